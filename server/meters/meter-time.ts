// Meter time: readings carry their own UTC offset; the algorithm's output (read_date + read_time)
// is local wall time in METER_TZ; API periods are [from, to) instants or local dates.
import { hoursOfDay, pad, parseDay, toLocal, utcMs } from '../time/market-time';

export const defaultMeterTz = 'Pacific/Auckland';
/** The zone the daily continuous aggregates were created with (sql/0042). */
export const aggregateTz = 'Pacific/Auckland';

const stampPattern = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?\s?(Z|z|[+-]\d{2}(?::?\d{2})?)$/;

/**
 * A timestamp that carries its offset ("2018-06-14 00:30:00+12", ISO-8601 "…T…Z") -> epoch ms,
 * or a reason. Calendar fields are checked (no 2018-02-30, no 24:00).
 */
export function parseStamp(text: string): { ms: number } | { error: string } {
  const m = stampPattern.exec(text);
  if (!m) {
    if (/^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(text)) return { error: `${JSON.stringify(text)} has no UTC offset (e.g. +12 or Z)` };
    return { error: `${JSON.stringify(text)} is not a timestamp like 2018-06-14 00:30:00+12` };
  }
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6] ?? '0'].map(Number) as [number, number, number, number, number, number];
  if (y < 1) return { error: `${JSON.stringify(text)} is in year 0000, which does not exist (the years go from 1 BC to 0001)` };
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || s > 59) return { error: `${JSON.stringify(text)} is not a real date and time` };
  let offsetMin = 0;
  const off = m[8]!;
  if (off !== 'Z' && off !== 'z') {
    const digits = off.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = digits.length > 2 ? Number(digits.slice(2)) : 0;
    if (oh > 15 || om > 59) return { error: `${JSON.stringify(text)} has an impossible UTC offset ${off}` };
    offsetMin = (off[0] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const frac = m[7] ? Math.round(Number(m[7]) * 1000) : 0;
  const ms = utcMs(y, mo, d, h, mi, s, frac) - offsetMin * 60_000;
  // Instants are answered in ISO-8601 UTC, which has four-digit years 0001-9999.
  if (ms < firstInstant || ms > lastInstant) return { error: `${JSON.stringify(text)} is ${ms < firstInstant ? 'before 0001-01-01T00:00:00Z' : 'after 9999-12-31T23:59:59Z'} in UTC, outside the years this API reads and writes` };
  return { ms };
}

const firstInstant = utcMs(1, 1, 1);
const lastInstant = utcMs(9999, 12, 31, 23, 59, 59, 999);

function daysInMonth(y: number, m: number): number {
  return new Date(utcMs(y, m + 1, 0)).getUTCDate();
}

const wallCache = new Map<string, number | string>();

/**
 * Local wall time (read_date + read_time) in `tz` -> epoch ms. A time the clocks skip is an
 * error, and so is a time that occurs twice (the autumn change) unless read_time carries its
 * offset ("02:30:00+12"): taking either occurrence silently could overwrite the other.
 */
export function wallTimeToInstant(day: string, time: string, tz: string): { ms: number } | { error: string } {
  const tm = /^(\d{2}):(\d{2})(?::(\d{2}))?(Z|[+-]\d{2}(?::?\d{2})?)?$/.exec(time);
  if (!parseDay(day)) return { error: `read_date: ${JSON.stringify(day)} is not a calendar date YYYY-MM-DD` };
  if (!tm) return { error: `read_time: ${JSON.stringify(time)} is not a time HH:MM:SS` };
  if (tm[4]) {
    const r = parseStamp(`${day} ${time}`);
    return 'ms' in r ? r : { error: `read_time: ${r.error}` };
  }
  const key = `${tz}|${day}|${time}`;
  const cached = wallCache.get(key);
  if (cached !== undefined) return typeof cached === 'number' ? { ms: cached } : { error: cached };
  const [h, mi, s] = [Number(tm[1]), Number(tm[2]), Number(tm[3] ?? 0)];
  let result: number | string;
  if (h > 23 || mi > 59 || s > 59) result = `read_time: ${JSON.stringify(time)} is not a time of day`;
  else {
    const slots = hoursOfDay(day, tz).filter((slot) => slot.hour === h);
    if (slots.length === 0) result = `read_time: ${day} ${time} does not exist in ${tz} (the clocks skip it)`;
    else if (slots.length > 1) result = `read_time: ${day} ${time} occurs twice in ${tz} (DST change); give its offset, e.g. ${time}${slots[0]!.offset.replace(':00', '')}`;
    else result = slots[0]!.start.getTime() + (mi * 60 + s) * 1000;
  }
  if (wallCache.size > 200_000) wallCache.clear();
  wallCache.set(key, result);
  return typeof result === 'number' ? { ms: result } : { error: result };
}

/** Readings and the algorithm's intervals are half-hourly: each starts on a whole half hour of local time. */
export const intervalMinutes = 30;

const gridCache = new Map<string, boolean>();

/**
 * Whether an instant starts a meter interval: a whole half hour (no seconds) of local time in
 * `tz`. Files repeat each timestamp for every ICP, so the answers are remembered.
 */
export function onGrid(ms: number, tz: string): boolean {
  if (ms % 60_000 !== 0) return false;
  const key = `${tz}|${ms}`;
  let on = gridCache.get(key);
  if (on === undefined) {
    on = toLocal(new Date(ms), tz).minute % intervalMinutes === 0;
    if (gridCache.size > 100_000) gridCache.clear();
    gridCache.set(key, on);
  }
  return on;
}

/** The reason for an instant off the interval grid, naming what was sent. */
export function offGridReason(sent: string, tz: string): string {
  return `${sent} is not on the ${intervalMinutes}-minute grid of meter intervals (they start at :00 or :30 local time in ${tz}, without seconds)`;
}

/** An API period bound: an ISO-8601 instant with offset, or a date meaning local midnight in tz. */
export function parseBound(text: string, tz: string): Date | string {
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) {
    if (!parseDay(text)) return `${JSON.stringify(text)} is not a calendar date`;
    return hoursOfDay(text, tz)[0]!.start;
  }
  const r = parseStamp(text);
  return 'ms' in r ? new Date(r.ms) : `must be an ISO-8601 instant with offset (2018-06-14T00:00:00+12:00) or a date YYYY-MM-DD; ${r.error}`;
}

export { pad };
