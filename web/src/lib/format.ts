// The dashboard's numbers, the same rules as the terminal's server/format.ts (test/number-format.test.ts
// holds the two to the same strings): money with 2 decimals and thousands separators, the sign
// apart from the digits ("+ 4,324.30", "- 120.00", "0.00"); MW with 1 to 3 decimals ("23,103.7");
// counts with separators ("1,837"); hour labels as the API names them ("08-09").

const money = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const mw = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 3 });
const count = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function formatMw(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : mw.format(value);
}

/** "+ 4,324.30", "- 120.00", "0.00": the sign apart from the digits, as the desk reads it. */
export function formatSigned(value: number | null | undefined): string {
  if (value === null || value === undefined) return '–';
  const cents = Math.round(value * 100);
  if (cents === 0) return '0.00';
  return `${cents > 0 ? '+' : '-'} ${money.format(Math.abs(cents) / 100)}`;
}

export function formatPrice(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : money.format(value);
}

export function formatCount(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : count.format(value);
}

export function signClass(value: number | null | undefined): string {
  if (value === null || value === undefined) return '';
  const rounded = Math.round(value * 100) / 100;
  return rounded > 0 ? 'pos' : rounded < 0 ? 'neg' : '';
}

/** Today's date (YYYY-MM-DD) in the market's time zone. */
export function todayIn(timeZone: string, now = new Date()): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(now);
}

export function timeIn(iso: string, timeZone: string): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(new Date(iso));
}

export function dateTimeIn(iso: string, timeZone: string): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone, day: '2-digit', month: 'short', hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(new Date(iso));
}

/** "12 s", "3 min", "2 h 5 min" */
export function age(fromIso: string | null | undefined, now: number): string {
  if (!fromIso) return 'never';
  const seconds = Math.max(0, Math.round((now - new Date(fromIso).getTime()) / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${minutes % 60} min`;
}

/** Whether a delivery day is over, today or still to come, in the market's time zone. */
export function dayStatus(day: string, timeZone: string, now = new Date()): 'past' | 'today' | 'future' {
  const today = todayIn(timeZone, now);
  return day < today ? 'past' : day === today ? 'today' : 'future';
}

/** What an empty day is, in words: delivered without trades, or no deals yet. */
export function emptyDayText(day: string, timeZone: string, now = new Date()): string {
  const status = dayStatus(day, timeZone, now);
  if (status === 'past') return 'Delivered — no trades on this day';
  if (status === 'today') return 'No deals yet today';
  return 'Not delivered yet — no deals yet for this day';
}
