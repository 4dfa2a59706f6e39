// Bulk loading of a readings CSV file, for the loader script and the benchmark. The same parser
// and validation as the upload endpoint; the fastest write path each database offers:
// batched upserts on the embedded one, COPY into a staging table on a TimescaleDB server.
import fs from 'node:fs';
import postgres from 'postgres';
import type { Db } from '../db';
import { checkReading, refreshReadingsDaily, readingColumns, upsertReadings, type ReadingRow, type UpsertCounts } from './readings-store';
import { defaultMeterTz } from './meter-time';
import { readUpload } from './upload';

export interface LoadProgress { bytes: number; totalBytes: number; rows: number; rejected: number }
export interface LoadResult extends UpsertCounts { received: number; rejected: number; errors: { line: number; message: string }[]; seconds: number; min?: Date; max?: Date }

interface Options {
  batchRows?: number;
  onProgress?: (p: LoadProgress) => void;
  /** Skip the aggregate refresh (the benchmark times it separately). */
  refresh?: boolean;
  /** METER_TZ: readings must start its half hours (default Pacific/Auckland). */
  tz?: string;
}

const maxErrors = 1000;

async function* parseFile(file: string, tz: string, batchRows: number, result: LoadResult, progress: LoadProgress, onProgress?: (p: LoadProgress) => void, span?: { lo: number; hi: number }): AsyncGenerator<ReadingRow[]> {
  const input = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  input.on('data', (chunk) => { progress.bytes += chunk.length; });
  let pending: ReadingRow[] = [];
  for await (const records of readUpload(input, 'csv', readingColumns)) {
    for (const record of records) {
      result.received++;
      const row = record.error ?? checkReading(record.values!, tz);
      if (typeof row === 'string') {
        result.rejected++;
        if (result.errors.length < maxErrors) result.errors.push({ line: record.line, message: row });
        continue;
      }
      if (span) { if (row.ms < span.lo) span.lo = row.ms; if (row.ms > span.hi) span.hi = row.ms; }
      pending.push(row);
    }
    if (pending.length >= batchRows) {
      yield pending;
      pending = [];
      progress.rows = result.received;
      progress.rejected = result.rejected;
      onProgress?.(progress);
    }
  }
  if (pending.length) yield pending;
  progress.rows = result.received;
  progress.rejected = result.rejected;
  onProgress?.(progress);
}

function emptyResult(): LoadResult {
  return { received: 0, stored: 0, replaced: 0, unchanged: 0, rejected: 0, errors: [], seconds: 0 };
}

/** Any database through the Db interface: batched upserts (one statement per batch). */
export async function loadReadingsBatched(db: Db, file: string, options: Options = {}): Promise<LoadResult> {
  const started = performance.now();
  const result = emptyResult();
  const progress: LoadProgress = { bytes: 0, totalBytes: fs.statSync(file).size, rows: 0, rejected: 0 };
  const span = { lo: Infinity, hi: -Infinity };
  const now = new Date();
  const state = { tryPlainInsert: true };
  for await (const batch of parseFile(file, options.tz ?? defaultMeterTz, options.batchRows ?? 20_000, result, progress, options.onProgress, span)) {
    const counts = await upsertReadings(db, batch, now, state);
    result.stored += counts.stored;
    result.replaced += counts.replaced;
    result.unchanged += counts.unchanged;
  }
  if (options.refresh !== false && span.hi >= span.lo) await refreshReadingsDaily(db, span.lo, span.hi + 1);
  result.seconds = (performance.now() - started) / 1000;
  if (span.hi >= span.lo) { result.min = new Date(span.lo); result.max = new Date(span.hi); }
  return result;
}

/**
 * A TimescaleDB server: validated rows are COPYed into an unlogged staging table, then merged
 * with one INSERT ... ON CONFLICT per batch (COPY itself cannot replace corrected values).
 */
/** `db` (the app's connection) refreshes the daily aggregate afterwards; null skips that. */
export async function loadReadingsCopy(url: string, db: Db | null, file: string, options: Options = {}): Promise<LoadResult> {
  const started = performance.now();
  const result = emptyResult();
  const progress: LoadProgress = { bytes: 0, totalBytes: fs.statSync(file).size, rows: 0, rejected: 0 };
  const span = { lo: Infinity, hi: -Infinity };
  const client = postgres(url, { max: 1, onnotice: () => {}, connection: { TimeZone: 'UTC', application_name: 'powerdesk-load-readings' } });
  try {
    await client`CREATE TEMP TABLE meter_readings_stage (seq bigint, icp_id text, read_at timestamptz, direction text, kwh numeric) ON COMMIT PRESERVE ROWS`;
    let seq = 0;
    for await (const batch of parseFile(file, options.tz ?? defaultMeterTz, options.batchRows ?? 500_000, result, progress, options.onProgress, span)) {
      const writable = await client`COPY meter_readings_stage (seq, icp_id, read_at, direction, kwh) FROM STDIN`.writable();
      let text = '';
      for (const r of batch) {
        // Text format: fields were validated (no tabs, backslashes or newlines can pass checkReading).
        text += `${seq++}\t${r.icp_id}\t${r.stamp}\t${r.direction}\t${r.kwh}\n`;
        if (text.length > 1 << 20) { if (!writable.write(text)) await new Promise((ok) => writable.once('drain', ok)); text = ''; }
      }
      await new Promise<void>((resolve, reject) => { writable.once('error', reject); writable.end(text, () => resolve()); writable.once('finish', () => resolve()); });
      const [counts] = await client<{ stored: number; replaced: number }[]>`
        WITH latest AS (
          SELECT DISTINCT ON (icp_id, read_at, direction) icp_id, read_at, direction, kwh FROM meter_readings_stage ORDER BY icp_id, read_at, direction, seq DESC),
        written AS (
          INSERT INTO meter_readings (icp_id, read_at, direction, kwh, ingested_at) SELECT icp_id, read_at, direction, kwh, now() FROM latest
          ON CONFLICT (icp_id, read_at, direction) DO UPDATE SET kwh = EXCLUDED.kwh, ingested_at = EXCLUDED.ingested_at
            WHERE meter_readings.kwh IS DISTINCT FROM EXCLUDED.kwh
          RETURNING (xmax = 0) AS inserted)
        SELECT (count(*) FILTER (WHERE inserted))::int AS stored, (count(*) FILTER (WHERE NOT inserted))::int AS replaced FROM written`;
      await client`TRUNCATE meter_readings_stage`;
      result.stored += counts!.stored;
      result.replaced += counts!.replaced;
      result.unchanged += batch.length - counts!.stored - counts!.replaced;
    }
  } finally {
    await client.end({ timeout: 5 });
  }
  if (db && options.refresh !== false && span.hi >= span.lo) await refreshReadingsDaily(db, span.lo, span.hi + 1);
  result.seconds = (performance.now() - started) / 1000;
  if (span.hi >= span.lo) { result.min = new Date(span.lo); result.max = new Date(span.hi); }
  return result;
}
