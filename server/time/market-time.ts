// Local market time <-> UTC instants. Delivery days and hours are local (MARKET_TZ); a day has
// 23 or 25 hours on DST changes. Built on Intl only: the zone database is the runtime's.

export interface HourSlot {
  /** 0-based position in the local day (0..22, 0..23 or 0..24). */
  index: number;
  /** Local start hour 0..23 (the repeated autumn hour appears twice with the same value). */
  hour: number;
  /** 1 for the first occurrence of a local hour, 2 for the repeat on the 25-hour day. */
  occurrence: 1 | 2;
  start: Date;
  end: Date;
  /** UTC offset at the start, e.g. "+02:00". */
  offset: string;
  /** "08-09"; the hours of a repeated local hour carry their offset: "02-03 (+02:00)". */
  label: string;
}

export class MarketTimeError extends Error {}

const dayPattern = /^(\d{4})-(\d{2})-(\d{2})$/;
const hourMs = 3_600_000;
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', {
      timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'longOffset',
    });
    formatters.set(tz, f);
  }
  return f;
}

export function isValidTimeZone(tz: string): boolean {
  try { formatter(tz); return true; } catch { return false; }
}

export interface LocalTime { day: string; hour: number; minute: number; offset: string }

export function toLocal(instant: Date, tz: string): LocalTime {
  const parts: Record<string, string> = {};
  for (const p of formatter(tz).formatToParts(instant)) parts[p.type] = p.value;
  const gmt = parts.timeZoneName ?? 'GMT';
  const offset = gmt === 'GMT' ? '+00:00' : gmt.slice(3);
  return { day: `${parts.year!.padStart(4, "0")}-${parts.month}-${parts.day}`, hour: Number(parts.hour), minute: Number(parts.minute), offset };
}

/**
 * Epoch ms of a UTC calendar time, for every year 0001-9999: Date.UTC takes years 0-99 for
 * 1900-1999, setUTCFullYear does not.
 */
export function utcMs(y: number, mo: number, d: number, h = 0, mi = 0, s = 0, ms = 0): number {
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, ms);
  return date.getTime();
}

/** Parses a YYYY-MM-DD calendar date strictly (no 2023-02-30). */
export function parseDay(day: string): { y: number; m: number; d: number } | undefined {
  const match = dayPattern.exec(day);
  if (!match) return undefined;
  const [y, m, d] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(utcMs(y, m, d));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== m - 1 || date.getUTCDate() !== d) return undefined;
  return { y, m, d };
}

const dayCache = new Map<string, HourSlot[]>();

/** Every real hour of a local day, in order: 24, or 23/25 on DST days. */
export function hoursOfDay(day: string, tz: string): HourSlot[] {
  const key = `${tz}|${day}`;
  const cached = dayCache.get(key);
  if (cached) return cached;
  const parsed = parseDay(day);
  if (!parsed) throw new MarketTimeError(`${JSON.stringify(day)} is not a calendar date YYYY-MM-DD`);
  // The first instant of the local day: scan quarter hours from the earliest possible offset.
  let t = utcMs(parsed.y, parsed.m, parsed.d) - 14 * hourMs;
  while (toLocal(new Date(t), tz).day < day) t += 15 * 60_000;
  const slots: HourSlot[] = [];
  const seen = new Map<number, number>();
  for (let start = t; toLocal(new Date(start), tz).day === day; start += hourMs) {
    const local = toLocal(new Date(start), tz);
    const occurrence = ((seen.get(local.hour) ?? 0) + 1) as 1 | 2;
    seen.set(local.hour, occurrence);
    slots.push({
      index: slots.length, hour: local.hour, occurrence,
      start: new Date(start), end: new Date(start + hourMs), offset: local.offset, label: '',
    });
  }
  const repeated = new Set([...seen].filter(([, n]) => n > 1).map(([h]) => h));
  for (const s of slots) {
    const base = `${pad(s.hour)}-${pad((s.hour + 1) % 24)}`;
    s.label = repeated.has(s.hour) ? `${base} (${s.offset})` : base;
  }
  if (dayCache.size > 5000) dayCache.clear();
  dayCache.set(key, slots);
  return slots;
}

export function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/**
 * The UTC start and end of a local delivery hour. The integer hour 2 on the 25-hour day means
 * the first of the two 02:00 hours (`occurrence` 2 asks for the second); an hour the day does
 * not have (02 on the spring change in Europe/Berlin) is an error that says why.
 */
export function deliveryHour(day: string, hour: number, tz: string, occurrence: 1 | 2 = 1): { start: Date; end: Date } {
  if (!Number.isInteger(hour) || hour < 0 || hour > 23) throw new MarketTimeError(`hour ${hour} is not an integer from 0 to 23`);
  const slots = hoursOfDay(day, tz);
  const slot = slots.find((s) => s.hour === hour && s.occurrence === occurrence);
  if (!slot) {
    if (occurrence === 2 && slots.some((s) => s.hour === hour)) throw new MarketTimeError(`hour ${pad(hour)} occurs only once on ${day} in ${tz}`);
    throw new MarketTimeError(`hour ${pad(hour)} does not exist on ${day} in ${tz} (the clocks skip it: that day has ${slots.length} hours)`);
  }
  return { start: slot.start, end: slot.end };
}

/** The UTC half-open interval [start, end) covering a local day. */
export function dayBounds(day: string, tz: string): { start: Date; end: Date } {
  const slots = hoursOfDay(day, tz);
  return { start: slots[0]!.start, end: slots[slots.length - 1]!.end };
}

/** The local market day of an instant, e.g. "today" for defaults. */
export function localDay(instant: Date, tz: string): string {
  return toLocal(instant, tz).day;
}

const periodPattern = /^(\d{2})(?::(\d{2}))?-(\d{2})(?::(\d{2}))?([AB])?$/;

/**
 * An exchange period string: "08-09" (hour), "08:15-08:30" (quarter hour), and on the 25-hour
 * day "02-03A" / "02-03B" (first / second occurrence; without a suffix, the first).
 */
export function parsePeriod(day: string, period: string, tz: string): { start: Date; end: Date } {
  const m = periodPattern.exec(period);
  if (!m) throw new MarketTimeError(`period ${JSON.stringify(period)} is not HH-HH, HH:MM-HH:MM, or HH-HHA/B`);
  const [sh, sm, eh, em] = [Number(m[1]), Number(m[2] ?? 0), Number(m[3]), Number(m[4] ?? 0)];
  if (sh > 23 || sm > 59 || eh > 24 || em > 59 || sm % 15 !== 0 || em % 15 !== 0) {
    throw new MarketTimeError(`period ${JSON.stringify(period)} has an impossible time (hours 00-24, minutes in quarter hours)`);
  }
  const startMin = sh * 60 + sm;
  let endMin = eh * 60 + em;
  if (endMin <= startMin && endMin === 0) endMin = 24 * 60; // "23-00" ends at midnight
  const duration = endMin - startMin;
  if (duration <= 0 || duration > 60) throw new MarketTimeError(`period ${JSON.stringify(period)} must end after it starts and last at most one hour`);
  const occurrence = m[5] === 'B' ? 2 : 1;
  if (m[5]) {
    const slots = hoursOfDay(day, tz);
    if (slots.filter((s) => s.hour === sh).length < 2) throw new MarketTimeError(`period ${JSON.stringify(period)}: the ${m[5]} suffix is only for the hour that occurs twice on a 25-hour day, and ${day} has no repeated ${pad(sh)} hour`);
  }
  const hourStart = deliveryHour(day, sh, tz, occurrence).start.getTime();
  const start = hourStart + sm * 60_000;
  return { start: new Date(start), end: new Date(start + duration * 60_000) };
}

/** Minutes before delivery start at which continuous intraday trading of a product closes (Germany: 5). */
export const defaultGateClosureMinutes = 5;

/** When trading of a product that starts at `deliveryStart` closes. */
export function gateClosure(deliveryStart: Date, minutes: number): Date {
  return new Date(deliveryStart.getTime() - minutes * 60_000);
}

/** A delivery product of a local day: the hour slot it starts in, where in it, and how long. */
export interface Product {
  slot: HourSlot;
  /** Minutes from the start of its hour slot (0, 15, 30, 45). */
  startMinute: number;
  minutes: number;
}

/**
 * The product [start, end) of a local day. A start outside the day is placed in the local day
 * it falls on, so that every stored period has a product.
 */
export function productOf(day: string, start: Date, end: Date, tz: string): Product {
  const t = start.getTime();
  const find = (d: string) => hoursOfDay(d, tz).find((s) => s.start.getTime() <= t && t < s.end.getTime());
  const slot = find(day) ?? find(localDay(start, tz))!;
  return { slot, startMinute: (t - slot.start.getTime()) / 60_000, minutes: (end.getTime() - t) / 60_000 };
}

/** The product a plain integer hour names: a whole local hour, its first occurrence. */
export function isPlainHour(p: Product): boolean {
  return p.startMinute === 0 && p.minutes === 60 && p.slot.occurrence === 1;
}

/**
 * A product in the exchange's notation, exactly as parsePeriod reads it back: "08-09",
 * "08:15-08:30", and in the second occurrence of a repeated hour "02-03B" / "02:15-02:30B".
 * The end is the start plus the duration in wall-clock minutes, as the exchange writes it.
 */
export function formatPeriod(p: Product): string {
  const suffix = p.slot.occurrence === 2 ? 'B' : '';
  if (p.startMinute === 0 && p.minutes === 60) return `${pad(p.slot.hour)}-${pad((p.slot.hour + 1) % 24)}${suffix}`;
  const from = p.slot.hour * 60 + p.startMinute;
  const clock = (minute: number) => `${pad(Math.floor(minute / 60) % 24)}:${pad(minute % 60)}`;
  return `${clock(from)}-${clock(from + p.minutes)}${suffix}`;
}
