// Numbers as the terminal tools show them, the same rules as the dashboard's web/src/lib/format.ts
// (test/number-format.test.ts holds the two to the same strings): money with 2 decimals and
// thousands separators, the sign apart from the digits ("+ 4,324.30", "- 120.00", "0.00"); MW
// with 1 to 3 decimals ("23,103.7"); counts with separators ("1,837"); hour labels as the API
// names them ("08-09", "02-03 (+01:00)").

const money = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const mw = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 3 });
const count = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** Signed money: "+ 4,324.30", "- 120.00", "0.00" (anything that rounds to 0 cents). */
export function formatMoney(eur: number): string {
  const cents = Math.round(eur * 100);
  if (cents === 0) return '0.00';
  return `${cents > 0 ? '+' : '-'} ${money.format(Math.abs(cents) / 100)}`;
}

/** A price or another unsigned amount with 2 decimals: "1,020.50", "-3.00". */
export function formatPrice(eur: number): string {
  return money.format(eur);
}

export function formatMw(value: number): string {
  return mw.format(value);
}

export function formatCount(value: number): string {
  return count.format(value);
}

/** A time of day in the market's zone: "14:03:27". */
export function formatClock(at: Date, timeZone: string): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(at);
}
