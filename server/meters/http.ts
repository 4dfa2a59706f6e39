// What the meter routes share: who may read or write, periods, opaque cursors, output formats
// and the streamed upload loop.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { Context } from 'hono';
import { z } from 'zod';
import type { User } from '../auth/users';
import type { AppDeps } from '../http/context';
import { ApiError, badRequest, forbidden } from '../http/errors';
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

/**
 * A streamed 200 whose chunks come from `chunks`, pulled as the client reads. Everything that
 * can be refused must be checked before: once the first byte is out the status is sent. A
 * failure after it errors the body, so the server breaks the connection off (no final chunk):
 * the client sees a truncated response, never a complete-looking one (a JSON array closed by
 * its `]`).
 */
export function streamChunks(c: Context, contentType: string, chunks: AsyncIterable<string>, log: AppDeps['log']): Response {
  const iterator = chunks[Symbol.asyncIterator]();
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await iterator.next();
        if (next.done) controller.close();
        else if (next.value) controller.enqueue(encoder.encode(next.value));
      } catch (error) {
        log.error('stream broken off after its first byte', { path: c.req.path, error });
        controller.error(error);
      }
    },
    async cancel() {
      await iterator.return?.();
    },
  });
  return new Response(body, { status: 200, headers: { 'Content-Type': contentType } });
}

/** A forged or damaged readings cursor: its position must be an instant as the API writes it, and a direction. */
export function checkReadingsCursor(after: { at?: unknown; d?: unknown }): { read_at: string; direction: string } {
  const at = after.at;
  if (typeof at !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(at) || !Number.isFinite(Date.parse(at)) || (after.d !== 'X' && after.d !== 'I')) {
    throw badRequest('cursor: damaged; use the "next" link as given');
  }
  return { read_at: at, direction: after.d };
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

/** An upload with bad lines: nothing of it was stored. */
export interface UploadRefusal {
  status_code: 400;
  message: string;
  received: number;
  rejected: number;
  errors: { line: number; message: string }[];
  errors_truncated: boolean;
}

export const UploadRefusal = z.object({
  status_code: z.literal(400), message: z.string(),
  received: z.number().int(), rejected: z.number().int(),
  errors: z.array(UploadError).meta({ description: `the first ${maxListedErrors} bad lines, each with its number and reason` }),
  errors_truncated: z.boolean().meta({ description: 'more lines were bad than are listed (`rejected` says how many)' }),
}).meta({ id: 'UploadRefusal' });

/**
 * Streams the request body through `check`, then writes the valid rows in batches: all or
 * nothing per upload. Every line is checked before anything is written; with a bad line the
 * answer lists the bad lines (the first 1000, and how many in all) and nothing is stored. The
 * valid rows wait in a temporary file (memory holds one batch), so a body of any size costs
 * linear time and constant memory. A database failure during the writing is a 500 that says how
 * many rows were stored: uploads replace what they send, so sending the same body again
 * completes it.
 */
export async function ingestUpload<T>(
  c: Context,
  columns: { required: readonly string[]; optional?: readonly string[] },
  check: (values: Record<string, unknown>) => T | string,
  write: (rows: T[]) => Promise<UpsertCounts>,
): Promise<UploadResult | UploadRefusal> {
  const format = uploadFormat(c.req.header('content-type'));
  const body = c.req.raw.body;
  if (!body) throw badRequest('body: empty; expected CSV or NDJSON rows');
  const refusal: UploadRefusal = { status_code: 400, message: '', received: 0, rejected: 0, errors: [], errors_truncated: false };
  const spool = new RowSpool<T>(writeBatchRows);
  try {
    for await (const records of readUpload(body as unknown as AsyncIterable<Uint8Array>, format, columns.required, columns.optional)) {
      for (const record of records) {
        refusal.received++;
        const row = record.error ?? check(record.values!);
        if (typeof row === 'string') {
          refusal.rejected++;
          if (refusal.errors.length < maxListedErrors) refusal.errors.push({ line: record.line, message: row });
          else refusal.errors_truncated = true;
        } else if (!refusal.rejected) {
          await spool.push(row);
        }
      }
    }
    if (refusal.rejected) {
      const first = refusal.errors[0]!;
      refusal.message = `${refusal.rejected} of ${refusal.received} lines are invalid; nothing was stored (line ${first.line}: ${first.message}${refusal.rejected > 1 ? '; the others are in errors' : ''})`;
      return refusal;
    }
    const result: UploadResult = { received: refusal.received, stored: 0, replaced: 0, unchanged: 0, rejected: 0, errors: [], errors_truncated: false };
    try {
      for await (const batch of spool.batches()) {
        const counts = await write(batch);
        result.stored += counts.stored;
        result.replaced += counts.replaced;
        result.unchanged += counts.unchanged;
      }
    } catch (error) {
      if (error instanceof ApiError) throw error;
      throw Object.assign(new Error(`upload: the database refused a batch after ${result.stored + result.replaced + result.unchanged} of ${result.received} rows were written (${(error as Error).message})`), { cause: error, partial: result });
    }
    return result;
  } finally {
    await spool.close();
  }
}

/** Rows kept in memory up to one batch, beyond that in a temporary file, read back in batches. */
class RowSpool<T> {
  private memory: T[] = [];
  private file?: { path: string; handle: fs.FileHandle };
  private pending = '';

  constructor(private batchRows: number) {}

  async push(row: T): Promise<void> {
    if (!this.file && this.memory.length < this.batchRows) { this.memory.push(row); return; }
    if (!this.file) {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'powerdesk-upload-'));
      const file = path.join(dir, 'rows.ndjson');
      this.file = { path: file, handle: await fs.open(file, 'w+') };
      for (const r of this.memory) this.pending += `${JSON.stringify(r)}\n`;
      this.memory = [];
    }
    this.pending += `${JSON.stringify(row)}\n`;
    if (this.pending.length > 1 << 20) await this.drain();
  }

  private async drain(): Promise<void> {
    if (!this.pending) return;
    await this.file!.handle.write(this.pending);
    this.pending = '';
  }

  async *batches(): AsyncGenerator<T[]> {
    if (!this.file) {
      if (this.memory.length) yield this.memory;
      return;
    }
    await this.drain();
    let batch: T[] = [];
    const input = readline.createInterface({ input: this.file.handle.createReadStream({ start: 0, autoClose: false }), crlfDelay: Infinity });
    for await (const line of input) {
      batch.push(JSON.parse(line) as T);
      if (batch.length >= this.batchRows) { yield batch; batch = []; }
    }
    if (batch.length) yield batch;
  }

  async close(): Promise<void> {
    if (!this.file) return;
    await this.file.handle.close().catch(() => {});
    await fs.rm(path.dirname(this.file.path), { recursive: true, force: true });
    this.file = undefined;
  }
}
