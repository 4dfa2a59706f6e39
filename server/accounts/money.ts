// Exact arithmetic for cash and quantities: decimal text <-> scaled BigInt. Cash in eurocent,
// quantities in micro-MW, prices in eurocent/MWh; energy = MW x the product's length in hours.
const plain = /^-?\d+(\.\d+)?$/;

/** Decimal text -> integer in units of 10^-scale, exactly (refuses more places than scale). */
export function toScaled(text: string, scale: number): bigint {
  const t = text.trim();
  if (!plain.test(t)) throw new RangeError(`not a decimal: ${text}`);
  const negative = t.startsWith('-');
  const [whole, frac = ''] = t.replace('-', '').split('.');
  const trimmed = frac.replace(/0+$/, '');
  if (trimmed.length > scale) throw new RangeError(`${text} has more than ${scale} decimal places`);
  const v = BigInt(whole!) * 10n ** BigInt(scale) + BigInt(trimmed.padEnd(scale, '0') || '0');
  return negative ? -v : v;
}

/** Integer in units of 10^-scale -> decimal text with exactly `places` decimals (places <= scale, exact). */
export function fromScaled(v: bigint, scale: number, places = scale): string {
  const negative = v < 0n;
  const digits = (negative ? -v : v).toString().padStart(scale + 1, '0');
  const whole = digits.slice(0, digits.length - scale);
  const frac = digits.slice(digits.length - scale).slice(0, places);
  if (places === 0) return `${negative ? '-' : ''}${whole}`;
  return `${negative && v !== 0n ? '-' : ''}${whole}.${frac}`;
}

/** Cash text ("12.30") -> cents. */
export const cents = (eur: string) => toScaled(eur, 2);
/** Cents -> "12.30". */
export const eur = (c: bigint) => fromScaled(c, 2);
/** MW text -> micro-MW. */
export const micro = (mw: string) => toScaled(mw, 6);
/** micro-MW -> plain decimal text without trailing zeros. */
export const mwText = (m: bigint) => fromScaled(m, 6).replace(/\.?0+$/, '');

const divCeil = (a: bigint, b: bigint) => (a >= 0n ? (a + b - 1n) / b : -((-a) / b));
const divRound = (a: bigint, b: bigint) => (a >= 0n ? (2n * a + b) / (2n * b) : -((2n * -a + b) / (2n * b)));

/** price (cents/MWh) x quantity (micro-MW) x minutes/60: the exact value scaled by 60 x 10^6 cents. */
const value = (priceCents: bigint, qtyMicro: bigint, minutes: number) => priceCents * qtyMicro * BigInt(minutes);
const valueScale = 60n * 1_000_000n;

/** Cash a buy holds for this quantity at this price: rounded up to the cent; nothing for a price at or below zero. */
export function holdCents(priceCents: bigint, qtyMicro: bigint, minutes: number): bigint {
  if (priceCents <= 0n || qtyMicro <= 0n) return 0n;
  return divCeil(value(priceCents, qtyMicro, minutes), valueScale);
}

/** What a fill costs (buy) or brings (sell): price x energy, rounded half away from zero to the cent. */
export function fillCents(priceCents: bigint, qtyMicro: bigint, minutes: number): bigint {
  return divRound(value(priceCents, qtyMicro, minutes), valueScale);
}

export const maxBig = (a: bigint, b: bigint) => (a > b ? a : b);
export const minBig = (a: bigint, b: bigint) => (a < b ? a : b);
