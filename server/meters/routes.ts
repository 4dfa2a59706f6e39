// The meter REST API: raw readings for the algorithm, its versioned output (runs, results,
// publication) and the aggregated views of the current output.
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import type { AppDeps, AppEnv } from '../http/context';
import { badRequest, conflict, notFound } from '../http/errors';
import { ErrorResponse } from '../http/openapi';
import { parseBody, parseQuery, readJson } from '../http/validate';
import { dayBounds, parseDay } from '../time/market-time';
import {
  assertMayRead, assertMayWrite, checkReadingsCursor, contentTypes, decodeCursor, encodeCursor, ingestUpload, meterTz, nextLink, outputFormat,
  parseId, parsePeriod, PeriodBound, positiveInt, streamChunks, UploadRefusal, UploadResult, uploadMetrics,
} from './http';
import { parseBound } from './meter-time';
import { matchesByKey, matchesForIcp, dailyForIcp, diffRuns, buckets, keys } from './matches-query';
import { checkIcp, checkReading, directions, readingColumns, readingsAfter, readingsText, readingsTextPages, refreshReadingsDaily, upsertReadings } from './readings-store';
import {
  checkResult, createRun, getRun, ignoredResultColumns, listRuns, publishRun, refreshResultsDaily, resultColumns, roles,
  RunNotDraftError, runStatuses, upsertResults, type Run,
} from './runs-store';

/** POST paths exempt from the 32 MiB body limit: they stream. */
export const streamedUploads = [/^\/v1\/meter-readings\/?$/, /^\/v1\/algorithm-runs\/[^/]+\/results\/?$/];

const statusResponses = {
  400: { description: 'Invalid parameter: the message names it and says why', schema: ErrorResponse },
  403: { description: 'Traders may not read meter data', schema: ErrorResponse },
};

// ---- readings ---------------------------------------------------------------------------------

const Reading = z.object({
  icp_id: z.string(),
  read_timestamp: z.string().meta({ description: 'ISO-8601 UTC instant, e.g. 2018-06-13T12:30:00.000Z' }),
  interval_read: z.string().meta({ description: 'kWh as an exact decimal string, as sent (e.g. "1.343")' }),
  energy_flow_direction: z.enum(directions),
}).meta({ id: 'MeterReading' });

const maxReadingsPage = 100_000;

const ReadingsQuery = z.strictObject({
  from: PeriodBound,
  to: PeriodBound,
  direction: z.enum(directions, { error: (i) => `must be X or I (got ${JSON.stringify(i.input)})` }).optional(),
  limit: positiveInt(`page size, at most ${maxReadingsPage}; without it every reading of the period is streamed`, maxReadingsPage).optional(),
  cursor: z.string().optional().meta({ description: 'from the previous page\'s next link' }),
});

/** The ICP of the path, checked like an uploaded one (a %00 or a quote never reaches the database). */
function icpParam(c: Context): string {
  const raw = c.req.param('icp_id') ?? '';
  const icp = checkIcp(raw);
  if (icp === undefined) throw badRequest(`icp_id: ${JSON.stringify(raw)} must be 1-64 letters, digits, _ or -`);
  return icp;
}

export function icpsRoutes(deps: AppDeps): Hono<AppEnv> {
  const { db, openapi } = deps;
  const tz = meterTz(deps);
  const app = new Hono<AppEnv>();

  openapi.add({
    method: 'get', path: '/v1/icps/{icp_id}/readings', tag: 'meters', summary: 'Raw interval readings of one ICP in [from, to), in time order',
    description: 'JSON array by default; `Accept: application/x-ndjson` or `text/csv` streams NDJSON or CSV (columns read_timestamp, interval_read, energy_flow_direction, icp_id). Without `limit` the whole period is streamed; with `limit` one page is returned and the next page\'s URL is in the `Link: <…>; rel="next"` header.',
    params: z.object({ icp_id: z.string() }), query: ReadingsQuery,
    responses: { 200: { description: 'Readings ordered by read_timestamp, then direction', schema: z.array(Reading) }, ...statusResponses },
  });
  app.get('/:icp_id/readings', async (c) => {
    assertMayRead(c.get('user'));
    const icp = icpParam(c);
    const q = parseQuery(c, ReadingsQuery);
    const { from, to } = parsePeriod(q, tz);
    const format = outputFormat(c);
    const base = { icp_id: icp, from, to, direction: q.direction };
    const match = { icp, from: from.toISOString(), to: to.toISOString(), dir: q.direction ?? null };
    const after = q.cursor ? checkReadingsCursor(decodeCursor<{ at?: unknown; d?: unknown }>(q.cursor, 'readings', match)) : undefined;
    c.header('Content-Type', contentTypes[format]);
    const header = format === 'csv' ? `${readingColumns.join(',')}\n` : '';
    if (q.limit !== undefined || after) {
      const limit = q.limit ?? 10_000;
      const page = await readingsText(db, base, format, limit, after);
      if (page.count === limit && page.last && (await readingsAfter(db, base, page.last))) {
        c.header('Link', `<${nextLink(c, encodeCursor({ k: 'readings', ...match, at: page.last.read_at, d: page.last.direction }))}>; rel="next"`);
      }
      return c.body(format === 'json' ? `[${page.text}]` : header + page.text, 200);
    }
    const pages = readingsTextPages(db, base, format);
    return streamChunks(c, contentTypes[format], (async function* () {
      yield format === 'json' ? '[' : header;
      yield* pages;
      if (format === 'json') yield ']';
    })(), deps.log);
  });

  // ---- per ICP matches ----
  const MatchesQuery = z.strictObject({
    from: PeriodBound,
    to: PeriodBound,
    role: z.enum(roles, { error: (i) => `must be buyer or seller (got ${JSON.stringify(i.input)})` }).optional().meta({ description: 'both roles when absent' }),
    run: positiveInt('a run id: that run\'s output, published or not; default the current output (latest published run per interval)').optional(),
    bucket: z.enum(buckets, { error: (i) => `must be one of ${buckets.join(', ')} (got ${JSON.stringify(i.input)})` }).default('day').meta({ description: 'interval (each half hour), hour, day or month, in METER_TZ; hours are real hours (25 on the autumn DST day, 23 in spring)' }),
  });
  openapi.add({
    method: 'get', path: '/v1/icps/{icp_id}/matches', tag: 'meters', summary: 'Aggregated algorithm output of one ICP in [from, to) by role and bucket',
    description: 'The current output (for each interval the latest published run covering it) unless `run` names one run.',
    params: z.object({ icp_id: z.string() }), query: MatchesQuery,
    responses: { 200: { description: 'One row per bucket and role', schema: z.array(MatchBucket) }, ...statusResponses, 404: { description: 'No such run', schema: ErrorResponse } },
  });
  app.get('/:icp_id/matches', async (c) => {
    assertMayRead(c.get('user'));
    const q = parseQuery(c, MatchesQuery);
    const period = parsePeriod(q, tz);
    if (q.run !== undefined && !(await getRun(db, q.run))) throw notFound(`run: no algorithm run ${q.run}`);
    return c.json(await matchesForIcp(db, { icp_id: icpParam(c), ...period, role: q.role, run: q.run, bucket: q.bucket, tz }));
  });

  const DailyQuery = z.strictObject({
    limit: positiveInt('days × roles per page (default 100, at most 1000)', 1000).optional(),
    cursor: z.string().optional(),
  });
  openapi.add({
    method: 'get', path: '/v1/icps/{icp_id}/matches/daily', tag: 'meters', summary: 'The current output of one ICP, one row per local day and role, paginated',
    description: 'The first page pins the set of published runs; following pages (the `next` link) use the same set, so a run published meanwhile does not shift or mix pages. Start again without a cursor to see it.',
    params: z.object({ icp_id: z.string() }), query: DailyQuery,
    responses: { 200: { description: 'A page', schema: z.object({ results: z.array(DailyRow), next: z.string().nullable() }) }, ...statusResponses },
  });
  app.get('/:icp_id/matches/daily', async (c) => {
    assertMayRead(c.get('user'));
    const icp = icpParam(c);
    const q = parseQuery(c, DailyQuery);
    const cursor = q.cursor ? decodeCursor<{ pin: number; day: string; role: string }>(q.cursor, 'daily', { icp }) : undefined;
    if (cursor && (!Number.isSafeInteger(cursor.pin) || !parseDay(String(cursor.day)) || !(roles as readonly string[]).includes(cursor.role))) throw badRequest('cursor: damaged; use the "next" link as given');
    const limit = q.limit ?? 100;
    const page = await dailyForIcp(db, { icp_id: icp, tz, limit, pin: cursor?.pin, after: cursor && { day: cursor.day, role: cursor.role, start: dayBounds(cursor.day, tz).start } });
    const lastRow = page.results[page.results.length - 1];
    const next = page.more && lastRow ? nextLink(c, encodeCursor({ k: 'daily', icp, pin: page.pin, day: lastRow.day, role: lastRow.role })) : null;
    return c.json({ results: page.results, next });
  });

  return app;
}

const MatchBucket = z.object({
  icp_id: z.string(),
  role: z.enum(roles),
  start: z.string().meta({ description: 'bucket start, ISO-8601 UTC' }),
  local: z.string().meta({ description: 'bucket start in METER_TZ: YYYY-MM-DDTHH:MM (interval, hour), YYYY-MM-DD (day), YYYY-MM (month)' }),
  offset: z.string().meta({ description: 'UTC offset of METER_TZ at the bucket start, e.g. "+13:00": tells apart the two hours with the same local time on the autumn DST day', example: '+12:00' }),
  matched_amount: z.string().meta({ description: 'exact decimal sum' }),
  intervals: z.number().int(),
  run_ids: z.array(z.number().int()).meta({ description: 'the runs the rows come from' }),
}).meta({ id: 'MatchBucket' });

const DailyRow = z.object({
  day: z.string().meta({ description: 'local date in METER_TZ' }),
  role: z.enum(roles),
  matched_amount: z.string(),
  intervals: z.number().int(),
  run_ids: z.array(z.number().int()),
}).meta({ id: 'MatchDaily' });

// ---- matches by key ---------------------------------------------------------------------------

export function matchesRoutes(deps: AppDeps): Hono<AppEnv> {
  const { db, openapi } = deps;
  const tz = meterTz(deps);
  const app = new Hono<AppEnv>();
  const Query = z.strictObject({
    from: PeriodBound,
    to: PeriodBound,
    key: z.enum(keys, { error: (i) => `must be one of ${keys.join(', ')} (got ${JSON.stringify(i.input)})` }).meta({ description: 'group by ICP, role or run (each also split by role)' }),
    run: positiveInt('one run\'s output instead of the current output').optional(),
    role: z.enum(roles, { error: (i) => `must be buyer or seller (got ${JSON.stringify(i.input)})` }).optional(),
  });
  openapi.add({
    method: 'get', path: '/v1/matches', tag: 'meters', summary: 'Algorithm output in [from, to) grouped by ICP, role or run',
    description: 'Current output unless `run` is given. Day-aligned periods and runs are answered from the daily continuous aggregate, others from the raw results. key=icp is streamed in ICP order.',
    query: Query,
    responses: {
      200: { description: 'Rows {icp_id|role|run_id, role, matched_amount, intervals[, icps]}', schema: z.array(z.object({ icp_id: z.string().optional(), run_id: z.number().int().optional(), role: z.enum(roles), matched_amount: z.string(), intervals: z.number().int(), icps: z.number().int().optional() })) },
      ...statusResponses, 404: { description: 'No such run', schema: ErrorResponse },
    },
  });
  app.get('/', async (c) => {
    assertMayRead(c.get('user'));
    const q = parseQuery(c, Query);
    const period = parsePeriod(q, tz);
    if (q.run !== undefined && !(await getRun(db, q.run))) throw notFound(`run: no algorithm run ${q.run}`);
    const pages = matchesByKey(db, { ...period, key: q.key, run: q.run, role: q.role, tz });
    return streamChunks(c, contentTypes.json, (async function* () {
      let first = true;
      yield '[';
      for await (const page of pages) {
        if (!page.length) continue;
        const text = page.map((r) => JSON.stringify(r)).join(',');
        yield first ? text : `,${text}`;
        first = false;
      }
      yield ']';
    })(), deps.log);
  });
  return app;
}

// ---- uploads ----------------------------------------------------------------------------------

export function meterReadingsRoutes(deps: AppDeps): Hono<AppEnv> {
  const { db, openapi, clock, log } = deps;
  const tz = meterTz(deps);
  const app = new Hono<AppEnv>();
  openapi.add({
    method: 'post', path: '/v1/meter-readings', tag: 'meters', summary: 'Upload interval readings (CSV or NDJSON, streamed)',
    description: 'CSV with the header `read_timestamp,interval_read,energy_flow_direction,icp_id` (any column order), or NDJSON objects with those fields. read_timestamp must carry its UTC offset and start a half-hour interval (:00 or :30 local time in METER_TZ, no seconds). A reading sent again for the same (icp_id, read_timestamp, direction) replaces the stored value. All or nothing: every line is checked first; with any bad line the answer is 400 listing the bad lines by number and reason, and nothing is stored. No body size limit; a line longer than 64 KiB is refused with its number.',
    body: { contentTypes: ['text/csv', 'application/x-ndjson'], description: 'read_timestamp,interval_read,energy_flow_direction,icp_id\\n2018-06-14 00:30:00+12,1.343,X,33' },
    responses: { 200: { description: 'Counts (every line stored)', schema: UploadResult }, 400: { description: 'Bad lines (listed; nothing stored), or wrong content type or CSV header', schema: UploadRefusal }, 403: { description: 'Only service and admin may upload', schema: ErrorResponse }, 413: { description: 'A line longer than the limit', schema: ErrorResponse } },
  });
  app.post('/', async (c) => {
    assertMayWrite(c.get('user'), 'upload meter readings');
    const now = clock.now();
    const state = { tryPlainInsert: true };
    let lo = Infinity;
    let hi = -Infinity;
    const result = await ingestUpload(c, { required: readingColumns }, (values) => {
      const row = checkReading(values, tz);
      if (typeof row !== 'string') { if (row.ms < lo) lo = row.ms; if (row.ms > hi) hi = row.ms; }
      return row;
    }, (rows) => upsertReadings(db, rows, now, state));
    if ('status_code' in result) return refuseUpload(c, deps, 'reading', result);
    countUpload(deps, 'reading', result);
    if (result.stored + result.replaced > 0) await refreshReadingsDaily(db, lo, hi + 1);
    log.info('meter readings uploaded', { user: c.get('user').username, ...result, errors: undefined });
    return c.json(result, 200);
  });
  return app;
}

function refuseUpload(c: Context, deps: AppDeps, kind: string, refusal: UploadRefusal) {
  uploadMetrics(deps).inc({ kind, outcome: 'rejected' }, refusal.rejected);
  deps.log.info('meter upload refused', { user: c.get('user').username, kind, received: refusal.received, rejected: refusal.rejected });
  return c.json(refusal, 400);
}

function countUpload(deps: AppDeps, kind: string, r: UploadResult) {
  const counter = uploadMetrics(deps);
  for (const outcome of ['stored', 'replaced', 'unchanged', 'rejected'] as const) if (r[outcome]) counter.inc({ kind, outcome }, r[outcome]);
}

// ---- algorithm runs ---------------------------------------------------------------------------

const RunBody = z.strictObject({
  algorithm: z.string().trim().min(1, { error: 'is required' }).max(100),
  version: z.string().trim().min(1, { error: 'is required' }).max(100),
  params: z.record(z.string(), z.unknown()).default({}).meta({ description: 'the algorithm\'s parameters, kept as given (JSON object)' }),
  input_from: PeriodBound,
  input_to: PeriodBound,
});

const RunOut = z.object({
  id: z.number().int(), algorithm: z.string(), version: z.string(), params: z.record(z.string(), z.unknown()),
  input_from: z.string(), input_to: z.string(), status: z.enum(runStatuses), created_at: z.string(), created_by: z.string().nullable(),
  published_at: z.string().nullable().meta({ description: 'publish_datetime: when the run was published' }),
  result_rows: z.number().int(),
}).meta({ id: 'AlgorithmRun' });

function runJson(run: Run) {
  return {
    id: run.id, algorithm: run.algorithm, version: run.version, params: run.params,
    input_from: run.input_from.toISOString(), input_to: run.input_to.toISOString(), status: run.status,
    created_at: run.created_at.toISOString(), created_by: run.created_by,
    published_at: run.published_at?.toISOString() ?? null, result_rows: run.result_rows,
  };
}

export function algorithmRunsRoutes(deps: AppDeps): Hono<AppEnv> {
  const { db, openapi, clock, log } = deps;
  const tz = meterTz(deps);
  const app = new Hono<AppEnv>();
  const idParam = z.object({ id: z.string() });
  const loadRun = async (c: Context, name = 'id', value = c.req.param(name)!): Promise<Run> => {
    const id = parseId(value, name);
    const run = await getRun(db, id);
    if (!run) throw notFound(`${name}: no algorithm run ${id}`);
    return run;
  };

  openapi.add({
    method: 'post', path: '/v1/algorithm-runs', tag: 'meters', summary: 'Register a run of the matching algorithm (a draft)',
    description: 'input_from/input_to: the period of readings the run covers, [from, to). Upload its results, then publish it.',
    body: { schema: RunBody },
    responses: { 201: { description: 'The new run', schema: RunOut }, 400: statusResponses[400], 403: { description: 'Only service and admin', schema: ErrorResponse } },
  });
  app.post('/', async (c) => {
    const user = c.get('user');
    assertMayWrite(user, 'register algorithm runs');
    const body = parseBody(await readJson(c), RunBody);
    const from = parseBound(body.input_from, tz);
    if (typeof from === 'string') throw badRequest(`input_from: ${from}`);
    const to = parseBound(body.input_to, tz);
    if (typeof to === 'string') throw badRequest(`input_to: ${to}`);
    if (to.getTime() <= from.getTime()) throw badRequest('input_to: must be after input_from (the period is [input_from, input_to))');
    const run = await createRun(db, { algorithm: body.algorithm, version: body.version, params: body.params, input_from: from, input_to: to, created_by: user.username, now: clock.now() });
    return c.json(runJson(run), 201);
  });

  openapi.add({
    method: 'post', path: '/v1/algorithm-runs/{id}/results', tag: 'meters', summary: 'Upload results of a draft run (CSV or NDJSON, streamed)',
    description: `CSV with the columns ${resultColumns.join(', ')} (any order; ${ignoredResultColumns.join(', ')} is accepted and ignored: the run's published_at is set on publish). Fields may be quoted, with spaces after commas; typographic quotes (“buyer”) are stripped. read_date + read_time are local wall time in METER_TZ (a time repeated by the DST change needs its offset: 02:30:00+12). Rows outside the run's input period are rejected. A row sent again replaces its amount.`,
    params: idParam,
    body: { contentTypes: ['text/csv', 'application/x-ndjson'] },
    responses: {
      200: { description: 'Counts, and the rejected lines', schema: UploadResult }, 400: statusResponses[400], 403: { description: 'Only service and admin', schema: ErrorResponse },
      404: { description: 'No such run', schema: ErrorResponse }, 409: { description: 'The run is published: its results are final', schema: ErrorResponse },
    },
  });
  app.post('/:id/results', async (c) => {
    assertMayWrite(c.get('user'), 'upload algorithm results');
    const run = await loadRun(c);
    if (run.status !== 'draft') throw conflict(`id: run ${run.id} is published; its results are final (register a new run)`);
    let lo = Infinity;
    let hi = -Infinity;
    let wrote = false;
    let result: UploadResult | UploadRefusal;
    try {
      result = await ingestUpload(c, { required: resultColumns, optional: ignoredResultColumns }, (values) => {
        const row = checkResult(values, run, tz);
        if (typeof row !== 'string') { if (row.ms < lo) lo = row.ms; if (row.ms > hi) hi = row.ms; }
        return row;
      }, (rows) => { wrote = true; return upsertResults(db, run.id, rows); });
    } catch (error) {
      if (error instanceof RunNotDraftError) throw conflict(`id: run ${run.id} was published during the upload; rows sent before that were stored`);
      throw error;
    } finally {
      if (wrote && hi >= lo) await refreshResultsDaily(db, lo, hi + 1);
    }
    if ('status_code' in result) return refuseUpload(c, deps, 'match_result', result);
    countUpload(deps, 'match_result', result);
    log.info('algorithm results uploaded', { run: run.id, ...result, errors: undefined });
    return c.json(result, 200);
  });

  openapi.add({
    method: 'post', path: '/v1/algorithm-runs/{id}/publish', tag: 'meters', summary: 'Publish a draft run: its output becomes current for its input period',
    params: idParam,
    responses: { 200: { description: 'The published run', schema: RunOut }, 400: statusResponses[400], 403: { description: 'Only service and admin', schema: ErrorResponse }, 404: { description: 'No such run', schema: ErrorResponse }, 409: { description: 'Already published', schema: ErrorResponse } },
  });
  app.post('/:id/publish', async (c) => {
    assertMayWrite(c.get('user'), 'publish algorithm runs');
    const run = await loadRun(c);
    const published = await publishRun(db, run.id, clock.now());
    if (!published) throw conflict(`id: run ${run.id} is already published (at ${run.published_at?.toISOString() ?? 'just now'})`);
    log.info('algorithm run published', { run: run.id, algorithm: run.algorithm, version: run.version });
    return c.json(runJson(published), 200);
  });

  const ListQuery = z.strictObject({
    status: z.enum(runStatuses, { error: (i) => `must be draft or published (got ${JSON.stringify(i.input)})` }).optional(),
    algorithm: z.string().optional(),
    limit: positiveInt('runs per page (default 100, at most 1000)', 1000).optional(),
    cursor: z.string().optional(),
  });
  openapi.add({
    method: 'get', path: '/v1/algorithm-runs', tag: 'meters', summary: 'Algorithm runs, newest first', query: ListQuery,
    responses: { 200: { description: 'A page', schema: z.object({ results: z.array(RunOut), next: z.string().nullable() }) }, ...statusResponses },
  });
  app.get('/', async (c) => {
    assertMayRead(c.get('user'));
    const q = parseQuery(c, ListQuery);
    const match = { status: q.status ?? null, algorithm: q.algorithm ?? null };
    const cursor = q.cursor ? decodeCursor<{ before: number }>(q.cursor, 'runs', match) : undefined;
    if (cursor && !Number.isSafeInteger(cursor.before)) throw badRequest('cursor: damaged; use the "next" link as given');
    const limit = q.limit ?? 100;
    const runs = await listRuns(db, { status: q.status, algorithm: q.algorithm, beforeId: cursor?.before, limit: limit + 1 });
    const more = runs.length > limit;
    if (more) runs.length = limit;
    return c.json({ results: runs.map(runJson), next: more ? nextLink(c, encodeCursor({ k: 'runs', ...match, before: runs[runs.length - 1]!.id })) : null });
  });

  openapi.add({
    method: 'get', path: '/v1/algorithm-runs/{id}', tag: 'meters', summary: 'One run, published or not', params: idParam,
    responses: { 200: { description: 'The run', schema: RunOut }, ...statusResponses, 404: { description: 'No such run', schema: ErrorResponse } },
  });
  app.get('/:id', async (c) => {
    assertMayRead(c.get('user'));
    return c.json(runJson(await loadRun(c)));
  });

  const DiffQuery = z.strictObject({ limit: positiveInt('rows per page (default 1000, at most 10000)', 10_000).optional(), cursor: z.string().optional() });
  const DiffRow = z.object({
    icp_id: z.string(), day: z.string(), role: z.enum(roles),
    a_amount: z.string().nullable(), b_amount: z.string().nullable(), delta: z.string().meta({ description: 'b - a (a missing side counts as 0)' }),
    a_intervals: z.number().int(), b_intervals: z.number().int(),
    change: z.enum(['added', 'removed', 'changed']),
  }).meta({ id: 'RunDiffRow' });
  openapi.add({
    method: 'get', path: '/v1/algorithm-runs/{a}/diff/{b}', tag: 'meters', summary: 'What changed from run a to run b, per ICP, local day and role',
    description: 'Only rows whose daily amount or number of intervals differ. Ordered by ICP, day, role; paginated.',
    params: z.object({ a: z.string(), b: z.string() }), query: DiffQuery,
    responses: { 200: { description: 'A page', schema: z.object({ a: RunOut, b: RunOut, results: z.array(DiffRow), next: z.string().nullable() }) }, ...statusResponses, 404: { description: 'No such run', schema: ErrorResponse } },
  });
  app.get('/:a/diff/:b', async (c) => {
    assertMayRead(c.get('user'));
    const q = parseQuery(c, DiffQuery);
    const a = await loadRun(c, 'a');
    const b = await loadRun(c, 'b');
    const cursor = q.cursor ? decodeCursor<{ icp: string; day: string; role: string }>(q.cursor, 'diff', { a: a.id, b: b.id }) : undefined;
    if (cursor && (checkIcp(cursor.icp) === undefined || !parseDay(String(cursor.day)) || !(roles as readonly string[]).includes(cursor.role))) throw badRequest('cursor: damaged; use the "next" link as given');
    const limit = q.limit ?? 1000;
    const rows = await diffRuns(db, { a: a.id, b: b.id, tz, after: cursor, limit: limit + 1 });
    const more = rows.length > limit;
    if (more) rows.length = limit;
    const lastRow = rows[rows.length - 1];
    const next = more && lastRow ? nextLink(c, encodeCursor({ k: 'diff', a: a.id, b: b.id, icp: lastRow.icp_id, day: lastRow.day, role: lastRow.role })) : null;
    return c.json({ a: runJson(a), b: runJson(b), results: rows, next });
  });

  return app;
}


