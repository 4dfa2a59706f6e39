// What the meter routes share: who may read or write, periods, opaque cursors, output formats
// and the streamed upload loop.
import type { Context } from 'hono';
import { z } from 'zod';
import type { User } from '../auth/users';
import type { AppDeps } from '../http/context';
import { badRequest, forbidden } from '../http/errors';
import { Counter } from '../http/metrics';
import { defaultMeterTz, parseBound } from './meter-time';
import type { UpsertCounts } from './readings-store';
import { readUpload, uploadFormat } from './upload';

export function meterTz(deps: AppDeps): string {
  return deps.meterTz ?? defaultMeterTz;
}

/** Meter data is for the algorithm (service), analysts and admins; traders get 403. */
export function assertMayRead(user: User): void {
  if (user.role === 'trader') throw forbidden(`role trader may not read meter data (service, analyst or admin only)`);
}

/** Uploads and publishing are for the algorithm's service account and admins. */
export function assertMayWrite(user: User, what: string): void {
  if (user.role !== 'service' && user.role !== 'admin') throw forbidden(`role ${user.role} may not ${what} (service or admin only)`);
}

export const PeriodBound = z.string().min(1).meta({ description: 'ISO-8601 instant with offset (2018-06-14T00:00:00+12:00, …Z) or a date YYYY-MM-DD meaning local midnight in METER_TZ' });

/** A half-open period [from, to); both bounds named in errors. */
export function parsePeriod(q: { from: string; to: string }, tz: string): { from: Date; to: Date } {
  const from = parseBound(q.from, tz);
  if (typeof from === 'string') throw badRequest(`from: ${from}`);
  const to = parseBound(q.to, tz);
  if (typeof to === 'string') throw badRequest(`to: ${to}`);
  if (to.getTime() <= from.getTime()) throw badRequest(`to: must be after from (the period is [from, to); got from=${q.from}, to=${q.to})`);
  return { from, to };
}

export const positiveInt = (name: string, max = Number.MAX_SAFE_INTEGER) =>
  z.string().regex(/^\d+$/, { error: `must be a positive integer` }).transform(Number).pipe(z.number().int().min(1, { error: `must be at least 1` }).max(max, { error: `must be at most ${max}` })).meta({ description: name });

export function parseId(value: string, name: string): number {
  if (!/^\d{1,15}$/.test(value) || Number(value) < 1) throw badRequest(`${name}: must be a positive integer (got ${JSON.stringify(value)})`);
  return Number(value);
}

/** Opaque keyset cursors: base64url JSON tagged with what they page through. */
export function encodeCursor(value: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function decodeCursor<T extends Record<string, unknown>>(text: string, kind: string, matches: Record<string, unknown>): T {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    throw badRequest('cursor: not a cursor of this API (use the "next" link as given)');
  }
  if (typeof value !== 'object' || value === null || value.k !== kind) throw badRequest('cursor: not a cursor of this endpoint (use the "next" link as given)');
  for (const [key, expected] of Object.entries(matches)) {
    if (value[key] !== expected) throw badRequest(`cursor: belongs to another query (${key} differs); start again without a cursor`);
  }
  return value as T;
}

/** The request's URL with the query parameter `cursor` replaced: the `next` link. */
export function nextLink(c: Context, cursor: string): string {
  const url = new URL(c.req.url);
  url.searchParams.set('cursor', cursor);
  return `${url.pathname}${url.search}`;
}

export type OutputFormat = 'json' | 'ndjson' | 'csv';

export function outputFormat(c: Context): OutputFormat {
  const accept = (c.req.header('accept') ?? '').toLowerCase();
  if (accept.includes('application/x-ndjson') || accept.includes('application/ndjson')) return 'ndjson';
  if (accept.includes('text/csv')) return 'csv';
  return 'json';
}

export const contentTypes: Record<OutputFormat, string> = {
  json: 'application/json; charset=utf-8',
  ndjson: 'application/x-ndjson; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
};

export const UploadError = z.object({ line: z.number().int(), message: z.string() });
export const UploadResult = z
  .object({
    received: z.number().int().meta({ description: 'data lines read (header and empty lines excluded)' }),
    stored: z.number().int().meta({ description: 'new rows' }),
    replaced: z.number().int().meta({ description: 'rows that existed with another value and were replaced (corrections)' }),
    unchanged: z.number().int().meta({ description: 'rows sent again with the value already stored' }),
    rejected: z.number().int(),
    errors: z.array(UploadError).meta({ description: `the first ${1000} rejected lines with the reason` }),
    errors_truncated: z.boolean(),
  })
  .meta({ id: 'UploadResult' });
export type UploadResult = z.infer<typeof UploadResult>;

const maxListedErrors = 1000;
const writeBatchRows = 20_000;

const counters = new WeakMap<AppDeps['metrics'], Counter>();

/** powerdesk_meter_rows_total{kind, outcome}, registered once per metrics registry. */
export function uploadMetrics(deps: AppDeps): Counter {
  let counter = counters.get(deps.metrics);
  if (!counter) {
    counter = deps.metrics.register(new Counter('powerdesk_meter_rows_total', 'Uploaded meter readings and match results by kind and outcome'));
    counters.set(deps.metrics, counter);
  }
  return counter;
}

/**
 * Streams the request body through `check`, writing valid rows in batches as they come. Rows
 * already written stay written when a later line is bad: every line gets its own verdict.
 */
export async function ingestUpload<T>(
  c: Context,
  columns: { required: readonly string[]; optional?: readonly string[] },
  check: (values: Record<string, unknown>) => T | string,
  write: (rows: T[]) => Promise<UpsertCounts>,
): Promise<UploadResult> {
  const format = uploadFormat(c.req.header('content-type'));
  const body = c.req.raw.body;
  if (!body) throw badRequest('body: empty; expected CSV or NDJSON rows');
  const result: UploadResult = { received: 0, stored: 0, replaced: 0, unchanged: 0, rejected: 0, errors: [], errors_truncated: false };
  const reject = (line: number, message: string) => {
    result.rejected++;
    if (result.errors.length < maxListedErrors) result.errors.push({ line, message });
    else result.errors_truncated = true;
  };
  let pending: T[] = [];
  const flush = async () => {
    if (!pending.length) return;
    const counts = await write(pending);
    result.stored += counts.stored;
    result.replaced += counts.replaced;
    result.unchanged += counts.unchanged;
    pending = [];
  };
  for await (const records of readUpload(body as unknown as AsyncIterable<Uint8Array>, format, columns.required, columns.optional)) {
    for (const record of records) {
      result.received++;
      if (record.error) { reject(record.line, record.error); continue; }
      const row = check(record.values!);
      if (typeof row === 'string') reject(record.line, row);
      else pending.push(row);
    }
    if (pending.length >= writeBatchRows) await flush();
  }
  await flush();
  return result;
}
