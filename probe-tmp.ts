import { openDb, sql } from './server/db';
import { migrate } from './server/db/migrate';
import { upsertReadings, readingsPage, type ReadingRow } from './server/meters/readings-store';
const db = await openDb({ dataDir: undefined });
await migrate(db);
const rows: ReadingRow[] = [];
const start = Date.UTC(2015, 0, 1);
for (let i = 0; i < 3 * 365 * 48; i++) { const ms = start + (i + 1) * 1800000; const stamp = new Date(ms).toISOString(); rows.push({ icp_id: 'long', ms, stamp, kwh: (0.2 + (i % 17) / 10).toFixed(3), direction: 'X' }, { icp_id: 'long', ms, stamp, kwh: '0.100', direction: 'I' }); }
// other ICPs in the 14 days for the pull
for (let k = 0; k < 300; k++) for (let i = 0; i < 14 * 48; i++) { const ms = Date.UTC(2017, 5, 1) + i * 1800000; rows.push({ icp_id: `i${k}`, ms, stamp: new Date(ms).toISOString(), kwh: '1.234', direction: 'X' }); }
for (let i = 0; i < rows.length; i += 20000) await upsertReadings(db, rows.slice(i, i + 20000), new Date(), { tryPlainInsert: true });
const from = new Date('2015-01-01T00:00:00Z'), to = new Date('2018-01-02T00:00:00Z');
async function time(label: string, fn: () => Promise<number>, n = 3) {
  const xs = [];
  let count = 0;
  for (let i = 0; i < n; i++) { const t = performance.now(); count = await fn(); xs.push(performance.now() - t); }
  xs.sort((a, b) => a - b);
  console.log(label, 'median ms', xs[Math.floor(n / 2)]!.toFixed(1), 'rows', count);
}
await time('page 20k current', async () => (await readingsPage(db, { icp_id: 'long', from, to, limit: 20000 })).length);
await time('page 20k raw cols', async () => (await db.query(sql`SELECT icp_id, read_at, kwh, direction FROM meter_readings WHERE icp_id='long' AND read_at >= ${from}::timestamptz AND read_at < ${to}::timestamptz ORDER BY read_at, direction LIMIT 20000`)).length);
await time('page 20k all text concat agg', async () => {
  const [r] = await db.query<{ t: string }>(sql`SELECT string_agg('{"icp_id":' || to_json(icp_id)::text || ',"read_timestamp":"' || to_char(read_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '","interval_read":"' || kwh::text || '","energy_flow_direction":"' || direction || '"}', E'\n' ORDER BY read_at, direction) AS t FROM (SELECT * FROM meter_readings WHERE icp_id='long' AND read_at >= ${from}::timestamptz AND read_at < ${to}::timestamptz ORDER BY read_at, direction LIMIT 20000) x`);
  return r!.t.split('\n').length; });
await time('page 20k count only', async () => (await db.query<{ n: number }>(sql`SELECT count(*)::int n FROM (SELECT 1 FROM meter_readings WHERE icp_id='long' AND read_at >= ${from}::timestamptz AND read_at < ${to}::timestamptz ORDER BY read_at, direction LIMIT 20000) x`))[0]!.n);
const f2 = new Date('2017-06-01T00:00:00Z'), t2 = new Date('2017-06-15T00:00:00Z');
await time('pull 14d', async () => (await readingsPage(db, { icp_id: 'i5', from: f2, to: t2, limit: 100001 })).length, 21);
await time('pull 14d agg text', async () => {
  const [r] = await db.query<{ t: string }>(sql`SELECT string_agg('{"icp_id":' || to_json(icp_id)::text || ',"read_timestamp":"' || to_char(read_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '","interval_read":"' || kwh::text || '","energy_flow_direction":"' || direction || '"}', ',' ORDER BY read_at, direction) AS t FROM meter_readings WHERE icp_id='i5' AND read_at >= ${f2}::timestamptz AND read_at < ${t2}::timestamptz`);
  return r!.t.length; }, 21);
console.log((await db.query<any>(sql`EXPLAIN ANALYZE SELECT icp_id FROM meter_readings WHERE icp_id='i5' AND read_at >= ${f2}::timestamptz AND read_at < ${t2}::timestamptz ORDER BY read_at, direction LIMIT 100001`)).map((r) => r['QUERY PLAN']).join('\n'));
await db.close();
