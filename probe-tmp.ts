import fs from 'node:fs';
import { readUpload } from './server/meters/upload';
import { checkReading, readingColumns, type ReadingRow } from './server/meters/readings-store';
import { openDb, sql } from './server/db';
import { migrate } from './server/db/migrate';
const rows: ReadingRow[] = [];
for await (const recs of readUpload(fs.createReadStream('/tmp/mp/g1.csv'), 'csv', readingColumns)) for (const r of recs) { const x = checkReading(r.values!); if (typeof x !== 'string') rows.push(x); }
const db = await openDb({ dataDir: process.env.DD || undefined });
await migrate(db);
const N = 250_000;
async function run(label: string, part: ReadingRow[], batch: number, sort: boolean, table = 'meter_readings') {
  const t = performance.now();
  for (let i = 0; i < part.length; i += batch) {
    let b = part.slice(i, i + batch);
    if (sort) b = b.sort((x, y) => (x.icp_id < y.icp_id ? -1 : x.icp_id > y.icp_id ? 1 : x.ms - y.ms));
    await db.query(sql`INSERT INTO ${sql([table] as unknown as TemplateStringsArray)} (icp_id, read_at, direction, kwh) SELECT * FROM unnest(${b.map(r => r.icp_id)}::text[], ${b.map(r => r.stamp)}::timestamptz[], ${b.map(r => r.direction)}::text[], ${b.map(r => r.kwh)}::numeric[])`);
  }
  console.log(label, Math.round(part.length / ((performance.now() - t) / 1000)), 'rows/s');
}
await run('hyper unsorted 50k', rows.slice(0, N), 50000, false);
await run('hyper sorted 50k', rows.slice(N, 2 * N), 50000, true);
await run('hyper sorted 200k', rows.slice(2 * N, 3 * N), 200000, true);
await db.query(sql`CREATE TABLE nr (icp_id text, read_at timestamptz, direction text, kwh numeric, ingested_at timestamptz default now(), unique (icp_id, read_at, direction))`);
await run('plain+unique sorted 50k', rows.slice(0, N), 50000, true, 'nr');
await db.close();
