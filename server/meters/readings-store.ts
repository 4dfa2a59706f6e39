// Meter readings: validation of uploaded rows, the replacing upsert, reads by ICP and period, and
// the refresh of the daily aggregate.
import type { Db, Queryable } from '../db';
import { sql } from '../db';
import { numberToDecimal } from '../trades/decimal';
import { offGridReason, onGrid, parseStamp } from './meter-time';

export const readingColumns = ['read_timestamp', 'interval_read', 'energy_flow_direction', 'icp_id'] as const;
export const directions = ['X', 'I'] as const;
export type Direction = (typeof directions)[number];

export interface ReadingRow {
  icp_id: string;
  /** Epoch ms of read_timestamp. */
  ms: number;
  /** read_timestamp as sent (validated; Postgres parses it with its offset). */
  stamp: string;
  kwh: string;
  direction: Direction;
}

export interface UpsertCounts {
  /** New rows. */
  stored: number;
  /** Existing rows whose value changed (a correction). */
  replaced: number;
  /** Re-sent rows with the value already stored. */
  unchanged: number;
}

const decimalPattern = /^\d{1,15}(\.\d{1,9})?$/;
const icpPattern = /^[A-Za-z0-9_-]{1,64}$/;

export function checkIcp(value: unknown): string | undefined {
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
  return typeof text === 'string' && icpPattern.test(text) ? text : undefined;
}

/** An exact decimal from CSV text or a JSON number; undefined when it is not a plain decimal. */
export function checkDecimal(value: unknown): string | undefined {
  const text = typeof value === 'number' ? numberToDecimal(value) : typeof value === 'string' ? value : undefined;
  return text !== undefined && decimalPattern.test(text) ? text : undefined;
}

// A file holds every ICP's reading for the same half hour: the same timestamp text thousands of
// times in a row. Remembering the last few parses saves most of the parsing.
const stampCache = new Map<string, ReturnType<typeof parseStamp>>();

function cachedStamp(text: string): ReturnType<typeof parseStamp> {
  let parsed = stampCache.get(text);
  if (parsed === undefined) {
    parsed = parseStamp(text);
    if (stampCache.size >= 4096) stampCache.clear();
    stampCache.set(text, parsed);
  }
  return parsed;
}

/** One uploaded reading -> a row, or the reason it is refused (naming the field). `tz`: METER_TZ, whose half hours are the grid. */
export function checkReading(values: Record<string, unknown>, tz: string): ReadingRow | string {
  const icp = checkIcp(values.icp_id);
  if (icp === undefined) return values.icp_id === undefined || values.icp_id === '' ? 'icp_id: is required' : `icp_id: ${JSON.stringify(values.icp_id)} must be 1-64 letters, digits, _ or -`;
  const rawStamp = values.read_timestamp;
  if (typeof rawStamp !== 'string' || !rawStamp) return 'read_timestamp: is required';
  const stamp = cachedStamp(rawStamp);
  if ('error' in stamp) return `read_timestamp: ${stamp.error}`;
  if (!onGrid(stamp.ms, tz)) return `read_timestamp: ${offGridReason(JSON.stringify(rawStamp), tz)}`;
  const kwh = checkDecimal(values.interval_read);
  if (kwh === undefined) return values.interval_read === undefined || values.interval_read === '' ? 'interval_read: is required' : `interval_read: ${JSON.stringify(values.interval_read)} must be a non-negative decimal such as 1.343`;
  const direction = values.energy_flow_direction;
  if (direction !== 'X' && direction !== 'I') return `energy_flow_direction: must be X or I (got ${JSON.stringify(direction ?? null)})`;
  return { icp_id: icp, ms: stamp.ms, stamp: rawStamp, kwh, direction };
}

function unnestReadings(rows: readonly ReadingRow[]) {
  const icps: string[] = new Array(rows.length);
  const stamps: string[] = new Array(rows.length);
  const dirs: string[] = new Array(rows.length);
  const kwhs: string[] = new Array(rows.length);
  rows.forEach((r, i) => { icps[i] = r.icp_id; stamps[i] = r.stamp; dirs[i] = r.direction; kwhs[i] = r.kwh; });
  return sql`unnest(${icps}::text[], ${stamps}::timestamptz[], ${dirs}::text[], ${kwhs}::numeric[]) AS i(icp_id, read_at, direction, kwh)`;
}

/** Per upload: whether the plain-INSERT fast path is still worth trying (see upsertReadings). */
export interface UpsertState { tryPlainInsert: boolean }

const uniqueViolation = '23505';

/**
 * Inserts new readings and replaces changed ones. A reading repeated within the batch counts
 * once, with its last value (a later line corrects an earlier one).
 *
 * Fresh data is the common case of a bulk load, and a plain INSERT is about twice as fast as
 * INSERT ... ON CONFLICT on the embedded database (and COPY, where the adapter has it, another
 * ~25% faster). So a batch is first tried that way (one statement: all or nothing); on a unique
 * violation it is written again as the upsert, and the rest of that upload goes straight to the
 * upsert.
 */
export async function upsertReadings(db: Queryable, rows: readonly ReadingRow[], ingestedAt: Date, state: UpsertState = { tryPlainInsert: false }): Promise<UpsertCounts> {
  if (rows.length === 0) return { stored: 0, replaced: 0, unchanged: 0 };
  if (state.tryPlainInsert) {
    // A reading twice in the batch makes the plain INSERT fail too: then the upsert below dedupes.
    try {
      if (db.copyCsv) {
        // Every field was validated by checkReading: none can hold a comma, quote or newline.
        const at = ingestedAt.toISOString();
        let csv = '';
        for (const r of rows) csv += `${r.icp_id},${r.stamp},${r.direction},${r.kwh},${at}\n`;
        await db.copyCsv('meter_readings', ['icp_id', 'read_at', 'direction', 'kwh', 'ingested_at'], csv);
      } else {
        await db.query(sql`INSERT INTO meter_readings (icp_id, read_at, direction, kwh, ingested_at) SELECT icp_id, read_at, direction, kwh, ${ingestedAt}::timestamptz FROM ${unnestReadings(rows)}`);
      }
      return { stored: rows.length, replaced: 0, unchanged: 0 };
    } catch (error) {
      if ((error as { code?: string }).code !== uniqueViolation) throw error;
      state.tryPlainInsert = false;
    }
  }
  const last = new Map<string, ReadingRow>();
  for (const r of rows) last.set(`${r.icp_id}|${r.ms}|${r.direction}`, r);
  const unique = last.size === rows.length ? rows : [...last.values()];
  const input = unnestReadings(unique);
  const [counts] = await db.query<{ stored: number; replaced: number }>(sql`
    WITH written AS (
      INSERT INTO meter_readings (icp_id, read_at, direction, kwh, ingested_at)
      SELECT icp_id, read_at, direction, kwh, ${ingestedAt}::timestamptz FROM ${input}
      ON CONFLICT (icp_id, read_at, direction) DO UPDATE SET kwh = EXCLUDED.kwh, ingested_at = EXCLUDED.ingested_at
        WHERE meter_readings.kwh IS DISTINCT FROM EXCLUDED.kwh
      RETURNING (xmax = 0) AS inserted)
    SELECT (count(*) FILTER (WHERE inserted))::int AS stored, (count(*) FILTER (WHERE NOT inserted))::int AS replaced FROM written`);
  const stored = counts!.stored;
  const replaced = counts!.replaced;
  return { stored, replaced, unchanged: rows.length - stored - replaced };
}

/**
 * Brings the daily aggregate up to date for [fromMs, toMs), widened to whole days. Outside any
 * transaction (TimescaleDB refuses a refresh inside one).
 */
export async function refreshReadingsDaily(db: Db, fromMs: number, toMs: number): Promise<void> {
  await refreshAggregate(db, 'meter_readings_daily', fromMs, toMs);
}

const dayMs = 86_400_000;

/**
 * An instant as PostgreSQL reads it, for every year: ISO-8601 writes 1 BC as year 0000 and
 * 10000 as +010000, which PostgreSQL refuses (a reading of 0001-01-01 00:30+12 is in 1 BC UTC).
 */
export function pgInstant(ms: number): string {
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  if (y >= 1 && y <= 9999) return d.toISOString();
  const two = (n: number) => String(n).padStart(2, '0');
  const rest = `${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}+00`;
  return y <= 0 ? `${String(1 - y).padStart(4, '0')}-${rest} BC` : `${y}-${rest}`;
}

export async function refreshAggregate(db: Db, view: 'meter_readings_daily' | 'match_results_daily', fromMs: number, toMs: number): Promise<void> {
  if (!(toMs > fromMs)) return;
  // Local days start at most 14 h before or 12 h after UTC midnight: one spare day each side.
  const from = pgInstant(Math.floor(fromMs / dayMs) * dayMs - dayMs);
  const to = pgInstant(Math.ceil(toMs / dayMs) * dayMs + 2 * dayMs);
  const name = view === 'meter_readings_daily' ? sql`'meter_readings_daily'` : sql`'match_results_daily'`;
  await db.query(sql`CALL refresh_continuous_aggregate(${name}, ${from}::timestamptz, ${to}::timestamptz)`);
}

export interface ApiReading {
  icp_id: string;
  read_timestamp: string;
  interval_read: string;
  energy_flow_direction: Direction;
}

export interface ReadingKey { read_at: string; direction: string }

export type ReadingsFormat = 'json' | 'ndjson' | 'csv';

export interface ReadingsQuery { icp_id: string; from: Date; to: Date; direction?: Direction }

function conditionsOf(q: ReadingsQuery, after?: ReadingKey) {
  const conditions = [sql`icp_id = ${q.icp_id}`, sql`read_at >= ${pgInstant(q.from.getTime())}::timestamptz`, sql`read_at < ${pgInstant(q.to.getTime())}::timestamptz`];
  if (q.direction) conditions.push(sql`direction = ${q.direction}`);
  if (after) conditions.push(sql`read_at >= ${after.read_at}::timestamptz AND (read_at > ${after.read_at}::timestamptz OR direction > ${after.direction})`);
  return sql.join(conditions, sql` AND `);
}

/**
 * Up to `limit` readings after the keyset position, already formatted by Postgres as one text
 * (JSON objects joined by commas, NDJSON lines or CSV lines): returning one text instead of a
 * row object per reading is what makes large exports fast on the embedded database.
 * `last` is the keyset position of the last reading included.
 */
export async function readingsText(db: Queryable, q: ReadingsQuery, format: ReadingsFormat, limit: number, after?: ReadingKey): Promise<{ text: string; count: number; last?: ReadingKey }> {
  // One ICP per query: its JSON / CSV rendering is computed here, once.
  const icpJson = JSON.stringify(q.icp_id);
  const icpCsv = /[",\n\r]/.test(q.icp_id) ? `"${q.icp_id.replaceAll('"', '""')}"` : q.icp_id;
  const object = sql`'{"icp_id":' || ${icpJson}::text || ',"read_timestamp":"' || ts || '","interval_read":"' || kwh::text || '","energy_flow_direction":"' || direction || '"}'`;
  const line = format === 'csv' ? sql`ts || ',' || kwh::text || ',' || direction || ',' || ${icpCsv}::text || E'\n'` : format === 'ndjson' ? sql`${object} || E'\n'` : object;
  const separator = format === 'json' ? sql`','` : sql`''`;
  const [row] = await db.query<{ text: string | null; count: number; last: string | null }>(sql`
    SELECT string_agg(${line}, ${separator} ORDER BY read_at, direction) AS text, count(*)::int AS count, max(ts || direction) AS last
    FROM (SELECT read_at, direction, kwh, to_char(read_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ts
          FROM meter_readings WHERE ${conditionsOf(q, after)}
          ORDER BY read_at, direction LIMIT ${limit}) r`);
  if (!row || row.count === 0) return { text: '', count: 0 };
  const last = row.last!;
  return { text: row.text!, count: row.count, last: { read_at: last.slice(0, -1), direction: last.slice(-1) } };
}

/** Whether any reading follows the keyset position (for the `next` link of a page). */
export async function readingsAfter(db: Queryable, q: ReadingsQuery, after: ReadingKey): Promise<boolean> {
  const rows = await db.query(sql`SELECT 1 FROM meter_readings WHERE ${conditionsOf(q, after)} LIMIT 1`);
  return rows.length > 0;
}

/** Every reading of the query as formatted text, in keyset pages: the export never holds the whole result. */
export async function* readingsTextPages(db: Queryable, q: ReadingsQuery, format: ReadingsFormat, pageSize = 20_000): AsyncGenerator<string> {
  let after: ReadingKey | undefined;
  let first = true;
  for (;;) {
    const page = await readingsText(db, q, format, pageSize, after);
    if (page.count) yield format === 'json' && !first ? `,${page.text}` : page.text;
    first = false;
    if (page.count < pageSize) return;
    after = page.last;
  }
}
