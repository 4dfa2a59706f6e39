// Number and time formatting for the report: signed PnL with the sign apart ("+ 450", "- 120").

const mw = new Intl.NumberFormat('en-US', { maximumFractionDigits: 3 });
const eur = new Intl.NumberFormat('en-US', { minimumFractionDigits: 0, maximumFractionDigits: 2 });
const price = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });

export function formatMw(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : mw.format(value);
}

/** "+ 450", "- 120.5", "0": the sign apart from the digits, as the desk reads it. */
export function formatSigned(value: number | null | undefined): string {
  if (value === null || value === undefined) return '–';
  const rounded = Math.round(value * 100) / 100;
  if (rounded === 0) return '0';
  return `${rounded > 0 ? '+' : '-'} ${eur.format(Math.abs(rounded))}`;
}

export function formatPrice(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : price.format(value);
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
  return new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(new Date(iso));
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
