import { openDb, sql } from './server/db';
import { migrate } from './server/db/migrate';
import { upsertReadings, readingsText, type ReadingRow } from './server/meters/readings-store';
const days = Number(process.env.CHUNK_DAYS);
const db = await openDb({ dataDir: undefined });
await migrate(db);
if (days !== 1) await db.query(sql`SELECT set_chunk_time_interval('meter_readings', make_interval(days => ${days}::int))`);
const N = 1500;
for (let i = 0; i < 14 * 48; i++) {
  const ms = Date.UTC(2017, 5, 1) + i * 1800000; const stamp = new Date(ms).toISOString();
  const rows: ReadingRow[] = [];
  for (let k = 0; k < N; k++) rows.push({ icp_id: String(100000 + k), ms, stamp, kwh: '1.234', direction: 'X' });
  await upsertReadings(db, rows, new Date(), { tryPlainInsert: true });
}
const f2 = new Date('2017-06-01T00:00:00Z'), t2 = new Date('2017-06-15T00:00:00Z');
const xs: number[] = [];
for (let i = 0; i < 200; i++) { const t = performance.now(); await readingsText(db, { icp_id: String(100000 + Math.floor(Math.random() * N)), from: f2, to: t2 }, 'json', 100000); xs.push(performance.now() - t); }
xs.sort((a, b) => a - b);
console.log('chunk days', days, 'p50', xs[100]!.toFixed(2), 'p90', xs[180]!.toFixed(2));
await db.close();
