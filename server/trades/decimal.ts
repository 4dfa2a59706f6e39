// Exact decimals as strings: money and quantities never pass through binary floating point
// arithmetic. JSON numbers arrive as doubles; String() gives their shortest exact decimal form.

const plain = /^-?\d+(\.\d+)?$/;

/** The decimal text of a JSON number, or undefined for exponents, NaN and infinities. */
export function numberToDecimal(n: number): string | undefined {
  if (!Number.isFinite(n)) return undefined;
  const text = String(n);
  return plain.test(text) ? text : undefined;
}

export function decimalPlaces(text: string): number {
  const dot = text.indexOf('.');
  return dot < 0 ? 0 : text.length - dot - 1;
}

/** Eurocent integer -> EUR decimal text, exactly: 2050 -> "20.50", -5 -> "-0.05". */
export function centsToEur(cents: number): string {
  const negative = cents < 0;
  const digits = String(Math.abs(cents)).padStart(3, '0');
  return `${negative ? '-' : ''}${digits.slice(0, -2)}.${digits.slice(-2)}`;
}

/** EUR decimal text (at most 2 places) -> eurocent integer, exactly: "20.5" -> 2050. */
export function eurToCents(eur: string): number {
  if (!plain.test(eur)) throw new RangeError(`not a decimal: ${eur}`);
  const negative = eur.startsWith('-');
  const [whole, frac = ''] = eur.replace('-', '').split('.');
  if (frac.replace(/0+$/, '').length > 2) throw new RangeError(`${eur} has more than 2 decimal places`);
  const cents = Number(whole) * 100 + Number(frac.padEnd(2, '0').slice(0, 2));
  return negative ? -cents : cents;
}

/** Decimal text without redundant trailing zeros: "12.300000" -> "12.3", "5.000" -> "5". */
export function trimDecimal(text: string): string {
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}
