// Algorithm runs and their match results: create, upload results into a draft, publish, and the
// "current output" rule: for each instant, the latest published run whose input period covers it.
import type { Db, Queryable } from '../db';
import { sql } from '../db';
import type { SqlQuery } from '../db/sql';
import { checkDecimal, checkIcp, refreshAggregate, type UpsertCounts } from './readings-store';
import { offGridReason, onGrid, wallTimeToInstant } from './meter-time';

export const roles = ['buyer', 'seller'] as const;
export type MatchRole = (typeof roles)[number];
export const runStatuses = ['draft', 'published'] as const;
export type RunStatus = (typeof runStatuses)[number];

export const resultColumns = ['icp_id', 'matched_amount', 'read_date', 'read_time', 'buyer_seller'] as const;
/** In the algorithm's output but per run here: the run's published_at is set on publish. */
export const ignoredResultColumns = ['publish_datetime'] as const;

export interface Run {
  id: number;
  algorithm: string;
  version: string;
  params: Record<string, unknown>;
  input_from: Date;
  input_to: Date;
  status: RunStatus;
  created_at: Date;
  created_by: string | null;
  published_at: Date | null;
  publication_seq: number | null;
  result_rows: number;
}

const runColumns = sql`id, algorithm, version, params, input_from, input_to, status, created_at, created_by, published_at, publication_seq, result_rows`;

export async function createRun(db: Queryable, input: { algorithm: string; version: string; params: Record<string, unknown>; input_from: Date; input_to: Date; created_by: string; now: Date }): Promise<Run> {
  const [run] = await db.query<Run>(sql`
    INSERT INTO algorithm_runs (algorithm, version, params, input_from, input_to, created_by, created_at)
    VALUES (${input.algorithm}, ${input.version}, ${JSON.stringify(input.params)}::jsonb, ${input.input_from}::timestamptz, ${input.input_to}::timestamptz, ${input.created_by}, ${input.now}::timestamptz)
    RETURNING ${runColumns}`);
  return run!;
}

export async function getRun(db: Queryable, id: number): Promise<Run | undefined> {
  const [run] = await db.query<Run>(sql`SELECT ${runColumns} FROM algorithm_runs WHERE id = ${id}`);
  return run;
}

export async function listRuns(db: Queryable, q: { status?: RunStatus; algorithm?: string; beforeId?: number; limit: number }): Promise<Run[]> {
  const conditions = [sql`TRUE`];
  if (q.status) conditions.push(sql`status = ${q.status}`);
  if (q.algorithm) conditions.push(sql`algorithm = ${q.algorithm}`);
  if (q.beforeId !== undefined) conditions.push(sql`id < ${q.beforeId}`);
  return db.query<Run>(sql`SELECT ${runColumns} FROM algorithm_runs WHERE ${sql.join(conditions, sql` AND `)} ORDER BY id DESC LIMIT ${q.limit}`);
}

/** draft -> published; undefined when the run is not a draft (already published or missing). */
export async function publishRun(db: Queryable, id: number, now: Date): Promise<Run | undefined> {
  const [run] = await db.query<Run>(sql`
    UPDATE algorithm_runs SET status = 'published', published_at = ${now}::timestamptz, publication_seq = nextval('algorithm_run_publication_seq')
    WHERE id = ${id} AND status = 'draft'
    RETURNING ${runColumns}`);
  return run;
}

/** The highest publication so far: pagination cursors pin it, so later publications do not move pages. */
export async function latestPublication(db: Queryable): Promise<number> {
  const [row] = await db.query<{ seq: number | null }>(sql`SELECT max(publication_seq) AS seq FROM algorithm_runs WHERE status = 'published'`);
  return row?.seq ?? 0;
}

export interface ResultRow {
  icp_id: string;
  ms: number;
  role: MatchRole;
  amount: string;
}

/** One uploaded result row -> a row, or the reason it is refused (naming the field). */
export function checkResult(values: Record<string, unknown>, run: Pick<Run, 'input_from' | 'input_to'>, tz: string): ResultRow | string {
  const icp = checkIcp(values.icp_id);
  if (icp === undefined) return values.icp_id === undefined || values.icp_id === '' ? 'icp_id: is required' : `icp_id: ${JSON.stringify(values.icp_id)} must be 1-64 letters, digits, _ or -`;
  const amount = checkDecimal(values.matched_amount);
  if (amount === undefined) return values.matched_amount === undefined || values.matched_amount === '' ? 'matched_amount: is required' : `matched_amount: ${JSON.stringify(values.matched_amount)} must be a non-negative decimal such as 0.0040`;
  if (typeof values.read_date !== 'string' || !values.read_date) return 'read_date: is required';
  if (typeof values.read_time !== 'string' || !values.read_time) return 'read_time: is required';
  const at = wallTimeToInstant(values.read_date, values.read_time, tz);
  if ('error' in at) return at.error;
  if (!onGrid(at.ms, tz)) return `read_time: ${offGridReason(`${values.read_date} ${values.read_time}`, tz)}`;
  if (at.ms < run.input_from.getTime() || at.ms >= run.input_to.getTime()) {
    return `read_date/read_time: ${values.read_date} ${values.read_time} (${new Date(at.ms).toISOString()}) is outside the run's input period [${run.input_from.toISOString()}, ${run.input_to.toISOString()})`;
  }
  const role = typeof values.buyer_seller === 'string' ? values.buyer_seller.trim().toLowerCase() : values.buyer_seller;
  if (role !== 'buyer' && role !== 'seller') return `buyer_seller: must be buyer or seller (got ${JSON.stringify(values.buyer_seller ?? null)})`;
  return { icp_id: icp, ms: at.ms, role, amount };
}

export class RunNotDraftError extends Error {}

/** Stores results of a draft run; a row sent again for the same key replaces its amount. */
export async function upsertResults(db: Queryable, runId: number, rows: readonly ResultRow[]): Promise<UpsertCounts> {
  const last = new Map<string, ResultRow>();
  for (const r of rows) last.set(`${r.icp_id}|${r.ms}|${r.role}`, r);
  const unique = [...last.values()];
  if (unique.length === 0) return { stored: 0, replaced: 0, unchanged: 0 };
  const [counts] = await db.query<{ draft: boolean; stored: number; replaced: number }>(sql`
    WITH run AS (SELECT 1 FROM algorithm_runs WHERE id = ${runId} AND status = 'draft'),
    written AS (
      INSERT INTO match_results (run_id, icp_id, interval_start, role, matched_amount)
      SELECT ${runId}::bigint, icp_id, interval_start, role, amount
      FROM unnest(${unique.map((r) => r.icp_id)}::text[], ${unique.map((r) => new Date(r.ms).toISOString())}::timestamptz[], ${unique.map((r) => r.role)}::text[], ${unique.map((r) => r.amount)}::numeric[])
        AS i(icp_id, interval_start, role, amount)
      WHERE EXISTS (SELECT 1 FROM run)
      ON CONFLICT (run_id, icp_id, interval_start, role) DO UPDATE SET matched_amount = EXCLUDED.matched_amount
        WHERE match_results.matched_amount IS DISTINCT FROM EXCLUDED.matched_amount
      RETURNING (xmax = 0) AS inserted),
    counted AS (UPDATE algorithm_runs SET result_rows = result_rows + (SELECT count(*) FROM written WHERE inserted) WHERE id = ${runId} AND EXISTS (SELECT 1 FROM run))
    SELECT EXISTS (SELECT 1 FROM run) AS draft, (count(*) FILTER (WHERE inserted))::int AS stored, (count(*) FILTER (WHERE NOT inserted))::int AS replaced FROM written`);
  if (!counts!.draft) throw new RunNotDraftError(`run ${runId} is no longer a draft`);
  return { stored: counts!.stored, replaced: counts!.replaced, unchanged: rows.length - counts!.stored - counts!.replaced };
}

/** A stretch of time whose output comes from one run. */
export interface Segment { run_id: number; start: Date; end: Date }

/**
 * Which run is current where, within [from, to): for each instant the published run with the
 * highest publication_seq (up to `pin`, when a cursor pinned the run set) whose input period
 * covers it. Open bounds mean "wherever any run covers".
 */
export async function currentSegments(db: Queryable, q: { from?: Date; to?: Date; pin?: number }): Promise<Segment[]> {
  const conditions = [sql`status = 'published'`];
  if (q.from) conditions.push(sql`input_to > ${q.from}::timestamptz`);
  if (q.to) conditions.push(sql`input_from < ${q.to}::timestamptz`);
  if (q.pin !== undefined) conditions.push(sql`publication_seq <= ${q.pin}`);
  const runs = await db.query<{ id: number; input_from: Date; input_to: Date }>(sql`
    SELECT id, input_from, input_to FROM algorithm_runs WHERE ${sql.join(conditions, sql` AND `)} ORDER BY publication_seq DESC`);
  return segmentsOf(runs, q.from, q.to);
}

/** Runs in order of precedence (latest publication first) -> non-overlapping winning stretches. */
export function segmentsOf(runs: readonly { id: number; input_from: Date; input_to: Date }[], from?: Date, to?: Date): Segment[] {
  const lo = from?.getTime() ?? -Infinity;
  const hi = to?.getTime() ?? Infinity;
  const points = new Set<number>();
  for (const r of runs) {
    points.add(Math.max(lo, r.input_from.getTime()));
    points.add(Math.min(hi, r.input_to.getTime()));
  }
  const sorted = [...points].filter((p) => p >= lo && p <= hi).sort((a, b) => a - b);
  const segments: Segment[] = [];
  for (let i = 0; i + 1 < sorted.length; i++) {
    const [a, b] = [sorted[i]!, sorted[i + 1]!];
    const winner = runs.find((r) => r.input_from.getTime() <= a && r.input_to.getTime() >= b);
    if (!winner) continue;
    const prev = segments[segments.length - 1];
    if (prev && prev.run_id === winner.id && prev.end.getTime() === a) prev.end = new Date(b);
    else segments.push({ run_id: winner.id, start: new Date(a), end: new Date(b) });
  }
  return segments;
}

/** WHERE fragment selecting the rows of the segments, on `column` (interval_start, or day in the aggregate). */
export function segmentScope(segments: readonly Segment[], column: SqlQuery): SqlQuery {
  if (segments.length === 0) return sql`FALSE`;
  return sql`(${sql.join(segments.map((s) => sql`(run_id = ${s.run_id} AND ${column} >= ${s.start}::timestamptz AND ${column} < ${s.end}::timestamptz)`), sql` OR `)})`;
}

export async function refreshResultsDaily(db: Db, fromMs: number, toMs: number): Promise<void> {
  await refreshAggregate(db, 'match_results_daily', fromMs, toMs);
}
