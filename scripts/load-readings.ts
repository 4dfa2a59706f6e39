// Bulk loader: npm run load-readings -- FILE.csv [--batch N] [--compress]
// Reads the provider's CSV (read_timestamp,interval_read,energy_flow_direction,icp_id) with a
// progress bar. DATABASE_URL set: COPY into a TimescaleDB server; otherwise the embedded database
// under DATA_DIR (stop the server first: it holds the embedded database, or POST the file to
// /v1/meter-readings instead). Corrections replace stored values; bad lines are listed.
import { parseArgs } from 'node:util';
import { loadConfig } from '../server/config';
import { openToolDb } from './cli';
import { migrate } from '../server/db/migrate';
import { loadReadingsBatched, loadReadingsCopy, type LoadProgress } from '../server/meters/bulk-load';
import { applyMeterChunkInterval, defaultChunkDays } from '../server/meters/chunks';
import { compressOldChunks } from '../server/meters/compression';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { batch: { type: 'string' }, compress: { type: 'boolean', default: false } } });
const file = positionals[0];
if (!file) {
  process.stderr.write('usage: npm run load-readings -- FILE.csv [--batch ROWS] [--compress]\n');
  process.exit(2);
}
const config = loadConfig();
const db = await openToolDb('load-readings', config);
const started = performance.now();
let lastDraw = 0;
function draw(p: LoadProgress, final = false) {
  const now = performance.now();
  if (!final && now - lastDraw < (process.stderr.isTTY ? 250 : 5000)) return;
  lastDraw = now;
  const share = p.totalBytes ? Math.min(1, p.bytes / p.totalBytes) : 1;
  const seconds = (now - started) / 1000;
  const rate = p.rows / Math.max(seconds, 0.001);
  const eta = share > 0 && share < 1 ? (seconds / share) * (1 - share) : 0;
  const width = 30;
  const bar = '#'.repeat(Math.round(share * width)).padEnd(width, '.');
  const line = `[${bar}] ${(share * 100).toFixed(1).padStart(5)}%  ${p.rows.toLocaleString('en')} rows  ${Math.round(rate).toLocaleString('en')} rows/s  ${p.rejected} rejected  ETA ${Math.round(eta)} s`;
  if (process.stderr.isTTY) process.stderr.write(`\r${line}`);
  else process.stderr.write(`${line}\n`);
}
try {
  await migrate(db);
  await applyMeterChunkInterval(db, config.METER_CHUNK_DAYS ?? defaultChunkDays(db));
  const batchRows = values.batch ? Number(values.batch) : undefined;
  const result = config.DATABASE_URL
    ? await loadReadingsCopy(config.DATABASE_URL, db, file, { batchRows, onProgress: draw, tz: config.METER_TZ })
    : await loadReadingsBatched(db, file, { batchRows, onProgress: draw, tz: config.METER_TZ });
  if (process.stderr.isTTY) process.stderr.write('\n');
  for (const e of result.errors.slice(0, 20)) process.stderr.write(`line ${e.line}: ${e.message}\n`);
  if (result.rejected > 20) process.stderr.write(`… ${result.rejected - 20} more rejected lines\n`);
  process.stdout.write(`${JSON.stringify({ file, database: db.kind, received: result.received, stored: result.stored, replaced: result.replaced, unchanged: result.unchanged, rejected: result.rejected, seconds: Number(result.seconds.toFixed(1)), rows_per_second: Math.round(result.received / result.seconds) })}\n`);
  if (values.compress) process.stdout.write(`${JSON.stringify({ compressed: await compressOldChunks(db, config.METER_COMPRESS_AFTER_DAYS) })}\n`);
} finally {
  await db.close();
}
