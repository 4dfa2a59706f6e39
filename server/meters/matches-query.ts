// Reading the algorithm's output: per ICP by bucket, per ICP and day (paginated, with a pinned
// run set), for a period grouped by a key, and the difference between two runs.
import type { Queryable } from '../db';
import { sql } from '../db';
import type { SqlQuery } from '../db/sql';
import { toLocal } from '../time/market-time';
import { aggregateTz } from './meter-time';
import { currentSegments, latestPublication, segmentScope, type MatchRole, type Segment } from './runs-store';

export const buckets = ['interval', 'hour', 'day', 'month'] as const;
export type Bucket = (typeof buckets)[number];
export const keys = ['icp', 'role', 'run'] as const;
export type Key = (typeof keys)[number];

const bucketWidth: Record<'day' | 'month', SqlQuery> = { day: sql`INTERVAL '1 day'`, month: sql`INTERVAL '1 month'` };
const localFormat: Record<Bucket, string> = { interval: 'YYYY-MM-DD"T"HH24:MI', hour: 'YYYY-MM-DD"T"HH24:MI', day: 'YYYY-MM-DD', month: 'YYYY-MM' };

/** The rows of one run in the period, or of the current runs (one segment per winning run). */
async function scopeOf(db: Queryable, q: { from: Date; to: Date; run?: number; pin?: number }): Promise<Segment[]> {
  if (q.run !== undefined) return [{ run_id: q.run, start: q.from, end: q.to }];
  return currentSegments(db, { from: q.from, to: q.to, pin: q.pin });
}

/**
 * The start of a bucket holding `time`. Hours are real hours: the local wall time cut to its hour,
 * kept as an instant, so the two 02:00 hours of the autumn change are two buckets (25 that day,
 * 23 in spring). time_bucket with a zone buckets wall-clock hours: it would merge them into one
 * bucket starting after half of its intervals.
 */
function bucketStart(bucket: Bucket, time: SqlQuery, tz: string): SqlQuery {
  if (bucket === 'interval') return time;
  if (bucket === 'hour') return sql`${time} - ((${time} AT TIME ZONE ${tz}::text) - date_trunc('hour', ${time} AT TIME ZONE ${tz}::text))`;
  return sql`time_bucket(${bucketWidth[bucket]}, ${time}, ${tz}::text)`;
}

/** The UTC offset of `tz` at an instant, "+13:00" (told apart where the wall clock repeats). */
function utcOffset(time: SqlQuery, tz: string): SqlQuery {
  const seconds = sql`extract(epoch FROM (${time} AT TIME ZONE ${tz}::text) - (${time} AT TIME ZONE 'UTC'))::int`;
  return sql`(CASE WHEN ${seconds} < 0 THEN '-' ELSE '+' END) || lpad((abs(${seconds}) / 3600)::text, 2, '0') || ':' || lpad((abs(${seconds}) % 3600 / 60)::text, 2, '0')`;
}

export interface MatchBucketRow {
  icp_id: string;
  role: MatchRole;
  start: string;
  local: string;
  /** UTC offset at the bucket start, e.g. "+13:00". */
  offset: string;
  matched_amount: string;
  intervals: number;
  run_ids: number[];
}

export async function matchesForIcp(db: Queryable, q: { icp_id: string; from: Date; to: Date; role?: MatchRole; run?: number; bucket: Bucket; tz: string }): Promise<MatchBucketRow[]> {
  const segments = await scopeOf(db, q);
  if (!segments.length) return [];
  const bucketExpr = bucketStart(q.bucket, sql`interval_start`, q.tz);
  const conditions = [sql`icp_id = ${q.icp_id}`, sql`interval_start >= ${q.from}::timestamptz`, sql`interval_start < ${q.to}::timestamptz`, segmentScope(segments, sql`interval_start`)];
  if (q.role) conditions.push(sql`role = ${q.role}`);
  return db.query<MatchBucketRow>(sql`
    SELECT icp_id, role, to_char(bucket, 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS start, to_char(bucket AT TIME ZONE ${q.tz}::text, ${localFormat[q.bucket]}::text) AS local,
           ${utcOffset(sql`bucket`, q.tz)} AS offset,
           matched_amount::text AS matched_amount, intervals, run_ids
    FROM (
      SELECT icp_id, role, ${bucketExpr} AS bucket, sum(matched_amount) AS matched_amount, count(*)::int AS intervals, array_agg(DISTINCT run_id::int) AS run_ids
      FROM match_results WHERE ${sql.join(conditions, sql` AND `)}
      GROUP BY icp_id, role, bucket
    ) g
    ORDER BY bucket, role`);
}

export interface DailyRow { day: string; role: MatchRole; matched_amount: string; intervals: number; run_ids: number[] }

/** One page of the ICP's current output per local day and role; `pin` fixes the published runs considered. */
export async function dailyForIcp(db: Queryable, q: { icp_id: string; tz: string; limit: number; pin?: number; after?: { day: string; role: string; start: Date } }): Promise<{ results: DailyRow[]; more: boolean; pin: number }> {
  const pin = q.pin ?? (await latestPublication(db));
  const segments = await currentSegments(db, { pin });
  if (!segments.length) return { results: [], more: false, pin };
  const conditions = [sql`icp_id = ${q.icp_id}`, segmentScope(segments, sql`interval_start`)];
  if (q.after) conditions.push(sql`interval_start >= ${q.after.start}::timestamptz`);
  const rows = await db.query<DailyRow>(sql`
    SELECT day, role, matched_amount::text AS matched_amount, intervals, run_ids FROM (
      SELECT to_char(time_bucket(INTERVAL '1 day', interval_start, ${q.tz}::text) AT TIME ZONE ${q.tz}::text, 'YYYY-MM-DD') AS day, role,
             sum(matched_amount) AS matched_amount, count(*)::int AS intervals, array_agg(DISTINCT run_id::int) AS run_ids
      FROM match_results WHERE ${sql.join(conditions, sql` AND `)}
      GROUP BY 1, 2
    ) g
    ${q.after ? sql`WHERE (day, role) > (${q.after.day}::text, ${q.after.role}::text)` : sql``}
    ORDER BY day, role LIMIT ${q.limit + 1}`);
  const more = rows.length > q.limit;
  if (more) rows.length = q.limit;
  return { results: rows, more, pin };
}

function isLocalMidnight(d: Date, tz: string): boolean {
  const local = toLocal(d, tz);
  return local.hour === 0 && local.minute === 0 && d.getUTCSeconds() === 0 && d.getUTCMilliseconds() === 0;
}

/**
 * The daily aggregate answers exactly when every bound (period and run segments) is a local
 * midnight of the zone it was built with; otherwise the raw results are read.
 */
function source(segments: readonly Segment[], from: Date, to: Date, tz: string): { table: SqlQuery; time: SqlQuery; intervals: SqlQuery } {
  const aligned = tz === aggregateTz && [from, to, ...segments.flatMap((s) => [s.start, s.end])].every((d) => isLocalMidnight(d, tz));
  return aligned
    ? { table: sql`match_results_daily`, time: sql`day`, intervals: sql`sum(intervals)::int8` }
    : { table: sql`match_results`, time: sql`interval_start`, intervals: sql`count(*)::int8` };
}

export type KeyRow = { icp_id?: string; run_id?: number; role: MatchRole; matched_amount: string; intervals: number; icps?: number };

/** Output of a period grouped by key; key=icp comes in pages of ICPs so that it can be streamed. */
export async function* matchesByKey(db: Queryable, q: { from: Date; to: Date; key: Key; run?: number; role?: MatchRole; tz: string }): AsyncGenerator<KeyRow[]> {
  const segments = await scopeOf(db, q);
  if (!segments.length) return;
  const src = source(segments, q.from, q.to, q.tz);
  const conditions = [sql`${src.time} >= ${q.from}::timestamptz`, sql`${src.time} < ${q.to}::timestamptz`, segmentScope(segments, src.time)];
  if (q.role) conditions.push(sql`role = ${q.role}`);
  const where = sql.join(conditions, sql` AND `);
  if (q.key === 'role') {
    yield db.query<KeyRow>(sql`SELECT role, sum(matched_amount)::text AS matched_amount, ${src.intervals} AS intervals, count(DISTINCT icp_id)::int AS icps FROM ${src.table} WHERE ${where} GROUP BY role ORDER BY role`);
    return;
  }
  if (q.key === 'run') {
    yield db.query<KeyRow>(sql`SELECT run_id::int AS run_id, role, sum(matched_amount)::text AS matched_amount, ${src.intervals} AS intervals FROM ${src.table} WHERE ${where} GROUP BY run_id, role ORDER BY run_id, role`);
    return;
  }
  const pageSize = 10_000;
  let after: string | undefined;
  for (;;) {
    const page = await db.query<KeyRow>(sql`
      SELECT icp_id, role, sum(matched_amount)::text AS matched_amount, ${src.intervals} AS intervals
      FROM ${src.table} WHERE ${where} ${after !== undefined ? sql`AND icp_id > ${after}` : sql``}
      GROUP BY icp_id, role ORDER BY icp_id, role LIMIT ${pageSize + 1}`);
    if (page.length <= pageSize) { yield page; return; }
    // The page may end inside an ICP's roles: keep whole ICPs, continue after the last whole one.
    const lastIcp = page[pageSize]!.icp_id;
    const whole = page.filter((r) => r.icp_id !== lastIcp);
    yield whole;
    after = whole[whole.length - 1]!.icp_id;
  }
}

export interface DiffRow {
  icp_id: string; day: string; role: MatchRole;
  a_amount: string | null; b_amount: string | null; delta: string;
  a_intervals: number; b_intervals: number;
  change: 'added' | 'removed' | 'changed';
}

/** Per ICP, local day and role, where run b differs from run a. */
export async function diffRuns(db: Queryable, q: { a: number; b: number; tz: string; after?: { icp: string; day: string; role: string }; limit: number }): Promise<DiffRow[]> {
  const daily = (run: number) => q.tz === aggregateTz
    ? sql`SELECT icp_id, role, to_char(day AT TIME ZONE ${q.tz}::text, 'YYYY-MM-DD') AS day, matched_amount, intervals::int AS intervals FROM match_results_daily WHERE run_id = ${run}`
    : sql`SELECT icp_id, role, to_char(time_bucket(INTERVAL '1 day', interval_start, ${q.tz}::text) AT TIME ZONE ${q.tz}::text, 'YYYY-MM-DD') AS day, sum(matched_amount) AS matched_amount, count(*)::int AS intervals FROM match_results WHERE run_id = ${run} GROUP BY 1, 2, 3`;
  return db.query<DiffRow>(sql`
    SELECT * FROM (
      SELECT coalesce(a.icp_id, b.icp_id) AS icp_id, coalesce(a.day, b.day) AS day, coalesce(a.role, b.role) AS role,
             a.matched_amount::text AS a_amount, b.matched_amount::text AS b_amount,
             (coalesce(b.matched_amount, 0) - coalesce(a.matched_amount, 0))::text AS delta,
             coalesce(a.intervals, 0) AS a_intervals, coalesce(b.intervals, 0) AS b_intervals,
             CASE WHEN a.icp_id IS NULL THEN 'added' WHEN b.icp_id IS NULL THEN 'removed' ELSE 'changed' END AS change
      FROM (${daily(q.a)}) a FULL JOIN (${daily(q.b)}) b ON a.icp_id = b.icp_id AND a.day = b.day AND a.role = b.role
      WHERE a.matched_amount IS DISTINCT FROM b.matched_amount OR a.intervals IS DISTINCT FROM b.intervals
    ) d
    ${q.after ? sql`WHERE (icp_id, day, role) > (${q.after.icp}::text, ${q.after.day}::text, ${q.after.role}::text)` : sql``}
    ORDER BY icp_id, day, role LIMIT ${q.limit}`);
}
