// Compresses meter chunks older than METER_COMPRESS_AFTER_DAYS (or --days N):
//   npm run compress-meters [-- --days 7]
// Embedded PGlite never runs compression policies; on the embedded database stop the server
// first, or let it do this itself with METER_COMPRESS_EVERY_MINUTES.
import { parseArgs } from 'node:util';
import { loadConfig } from '../server/config';
import { openToolDb } from './cli';
import { migrate } from '../server/db/migrate';
import { compressOldChunks } from '../server/meters/compression';

const { values } = parseArgs({ options: { days: { type: 'string' } } });
const config = loadConfig();
const days = values.days !== undefined ? Number(values.days) : config.METER_COMPRESS_AFTER_DAYS;
if (!Number.isInteger(days) || days < 0) {
  process.stderr.write('--days: must be a whole number of days\n');
  process.exit(2);
}
const db = await openToolDb('compress-meters', config);
try {
  await migrate(db);
  const started = performance.now();
  const result = await compressOldChunks(db, days);
  process.stdout.write(`${JSON.stringify({ older_than_days: days, compressed: result, seconds: Number(((performance.now() - started) / 1000).toFixed(1)) })}\n`);
} finally {
  await db.close();
}
