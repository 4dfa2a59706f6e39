// Meter benchmark on a fresh database (embedded, or a new one on the TimescaleDB server of
// DATABASE_URL): npm run bench:meters [-- --rows 10000000] [--quick]
// Generates readings (14 days, NZ time), bulk-loads them, then measures through the real HTTP
// API: one ICP x 14 days raw pull (p50/p99), NDJSON export rate, aggregated endpoints (p50),
// aggregate refresh and compression; and estimates the full 200M-row batch from those figures.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { loadConfig } from '../server/config';
import { sql } from '../server/db';
import { benchDatabase } from './bench-support';
import { createLogger } from '../server/log';
import { start } from '../server/main';
import { loadReadingsBatched } from '../server/meters/bulk-load';
import { compressOldChunks } from '../server/meters/compression';
import { refreshReadingsDaily } from '../server/meters/readings-store';
import { createRun, publishRun, refreshResultsDaily, upsertResults, type ResultRow } from '../server/meters/runs-store';

const { values } = parseArgs({ options: { rows: { type: 'string' }, quick: { type: 'boolean', default: false }, keep: { type: 'boolean', default: false } } });
const targetRows = Number(values.rows ?? (values.quick ? 1_000_000 : 10_000_000));
const days = 14;
const solar = 0.15;
const icps = Math.max(10, Math.round(targetRows / (days * 48 * (1 + solar))));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-meters-'));
const csv = path.join(dir, 'readings.csv');
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!; };
const ms = (x: number) => Number(x.toFixed(2));
// The machine is shared: next to wall time, the CPU seconds this process used (server, database
// and client all run in it) show what the code costs when it has a core to itself.
const cpuSeconds = (since: NodeJS.CpuUsage) => { const u = process.cpuUsage(since); return (u.user + u.system) / 1e6; };

log(`generating ${icps} ICPs x ${days} days into ${csv}`);
execFileSync(process.execPath, ['--import', 'tsx', 'scripts/gen-readings.ts', '--icps', String(icps), '--days', String(days), '--out', csv, '--solar', String(solar)], { stdio: ['ignore', 'ignore', 'inherit'] });

const database = await benchDatabase('meters');
console.log(`database: ${database.label}`);
const db = await database.open();
const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', ADMIN_USER: 'bench', ADMIN_PASSWORD: 'bench-password', LOG_LEVEL: 'warn' });
const server = await start(config, { db, log: createLogger('warn') });
const auth = `Basic ${Buffer.from('bench:bench-password').toString('base64')}`;
// The embedded database runs on this thread: after a long load the server may close an idle
// keep-alive connection just as the client reuses it. Such a request is simply sent again.
const get = async (p: string, accept?: string): Promise<Response> => {
  const send = () => fetch(`${server.url}${p}`, { headers: { authorization: auth, ...(accept ? { accept } : {}) } });
  try { return await send(); } catch { return send(); }
};
const figures: Record<string, unknown> = { rows_target: targetRows, icps, days };

try {
  // ---- load ----
  let lastLog = 0;
  const loadCpu = process.cpuUsage();
  const load = await loadReadingsBatched(db, csv, {
    refresh: false,
    onProgress: (p) => { if (performance.now() - lastLog > 10_000) { lastLog = performance.now(); log(`  loaded ${p.rows.toLocaleString('en')} rows (${((p.bytes / p.totalBytes) * 100).toFixed(0)}%)`); } },
  });
  figures.rows = load.received;
  figures.load_seconds = Number(load.seconds.toFixed(1));
  figures.load_rows_per_s = Math.round(load.received / load.seconds);
  figures.load_rows_per_cpu_s = Math.round(load.received / cpuSeconds(loadCpu));
  log(`load: ${load.received} rows in ${load.seconds.toFixed(1)} s = ${figures.load_rows_per_s} rows/s (stored ${load.stored}, rejected ${load.rejected})`);
  let t = performance.now();
  await refreshReadingsDaily(db, load.min!.getTime(), load.max!.getTime() + 1);
  figures.refresh_readings_daily_s = Number(((performance.now() - t) / 1000).toFixed(1));

  // A long history for one ICP, to measure a large NDJSON export.
  const longRows: string[] = ['read_timestamp,interval_read,energy_flow_direction,icp_id'];
  const longStart = Date.UTC(2015, 0, 1);
  for (let i = 0; i < 3 * 365 * 48; i++) {
    const stamp = new Date(longStart + (i + 1) * 1_800_000).toISOString();
    longRows.push(`${stamp},${(0.2 + (i % 17) / 10).toFixed(3)},X,bench-long`, `${stamp},${((i % 5) / 10).toFixed(3)},I,bench-long`);
  }
  fs.writeFileSync(path.join(dir, 'long.csv'), longRows.join('\n'));
  const long = await loadReadingsBatched(db, path.join(dir, 'long.csv'), { refresh: false });

  // ---- raw pull: one ICP x 14 days ----
  const icpIds = Array.from({ length: icps }, (_, i) => String(1_000_000 + i));
  const pick = () => icpIds[Math.floor(Math.random() * icpIds.length)]!;
  for (let i = 0; i < 20; i++) await (await get(`/v1/icps/${pick()}/readings?from=2018-06-13&to=2018-06-27`)).text();
  const pulls: number[] = [];
  let pulledRows = 0;
  const pullCpu = process.cpuUsage();
  for (let i = 0; i < 300; i++) {
    const s = performance.now();
    const rows = (await (await get(`/v1/icps/${pick()}/readings?from=2018-06-13&to=2018-06-27`)).json()) as unknown[];
    pulls.push(performance.now() - s);
    pulledRows += rows.length;
  }
  figures.raw_pull_rows_per_request = Math.round(pulledRows / pulls.length);
  figures.raw_pull_p50_ms = ms(pct(pulls, 50));
  figures.raw_pull_p99_ms = ms(pct(pulls, 99));
  figures.raw_pull_cpu_ms_per_request = ms((cpuSeconds(pullCpu) * 1000) / pulls.length);
  log(`raw pull (1 ICP x 14 days, ${figures.raw_pull_rows_per_request} rows): p50 ${figures.raw_pull_p50_ms} ms, p99 ${figures.raw_pull_p99_ms} ms`);

  // ---- NDJSON export ----
  const exportRates: number[] = [];
  const exportCpu = process.cpuUsage();
  for (let i = 0; i < 3; i++) {
    const s = performance.now();
    const text = await (await get('/v1/icps/bench-long/readings?from=2015-01-01&to=2018-01-02', 'application/x-ndjson')).text();
    const n = text.length ? text.split('\n').length - 1 : 0;
    exportRates.push(n / ((performance.now() - s) / 1000));
    if (n !== long.received) throw new Error(`export returned ${n} rows, expected ${long.received}`);
  }
  figures.ndjson_export_rows = long.received;
  figures.ndjson_export_rows_per_s = Math.round(pct(exportRates, 50));
  figures.ndjson_export_rows_per_cpu_s = Math.round((3 * long.received) / cpuSeconds(exportCpu));
  log(`NDJSON export of ${long.received} rows: ${figures.ndjson_export_rows_per_s} rows/s`);

  // ---- algorithm output and aggregated endpoints ----
  const resultIcps = Math.min(icps, 2000);
  const run = await createRun(db, { algorithm: 'bench', version: '1', params: {}, input_from: new Date('2018-06-12T12:00:00Z'), input_to: new Date('2018-06-26T12:00:00Z'), created_by: 'bench', now: new Date() });
  t = performance.now();
  let results = 0;
  for (let d = 0; d < days; d++) {
    const batch: ResultRow[] = [];
    for (let k = 0; k < 48; k++) {
      const at = Date.UTC(2018, 5, 12, 12) + (d * 48 + k) * 1_800_000;
      for (let i = 0; i < resultIcps; i++) batch.push({ icp_id: icpIds[i]!, ms: at, role: i % 3 ? 'buyer' : 'seller', amount: ((i * 7 + k) % 50 / 1000).toFixed(4) });
    }
    results += (await upsertResults(db, run.id, batch)).stored;
  }
  figures.results_rows = results;
  figures.results_load_rows_per_s = Math.round(results / ((performance.now() - t) / 1000));
  t = performance.now();
  await refreshResultsDaily(db, Date.UTC(2018, 5, 12, 12), Date.UTC(2018, 5, 26, 12));
  figures.refresh_results_daily_s = Number(((performance.now() - t) / 1000).toFixed(1));
  await publishRun(db, run.id, new Date());
  const timeIt = async (label: string, url: () => string, n = 100) => {
    for (let i = 0; i < 5; i++) await (await get(url())).text();
    const xs: number[] = [];
    const cpu = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      const s = performance.now();
      const res = await get(url());
      await res.text();
      if (res.status !== 200) throw new Error(`${label}: HTTP ${res.status}`);
      xs.push(performance.now() - s);
    }
    figures[`${label}_p50_ms`] = ms(pct(xs, 50));
    figures[`${label}_cpu_ms_per_request`] = ms((cpuSeconds(cpu) * 1000) / n);
    log(`${label}: p50 ${ms(pct(xs, 50))} ms, p99 ${ms(pct(xs, 99))} ms`);
  };
  const pickResult = () => icpIds[Math.floor(Math.random() * resultIcps)]!;
  await timeIt('icp_matches_day', () => `/v1/icps/${pickResult()}/matches?from=2018-06-13&to=2018-06-27&role=buyer`);
  await timeIt('icp_matches_interval', () => `/v1/icps/${pickResult()}/matches?from=2018-06-13&to=2018-06-27&bucket=interval`);
  await timeIt('icp_matches_daily_page', () => `/v1/icps/${pickResult()}/matches/daily?limit=28`);
  await timeIt('matches_by_role_14d', () => '/v1/matches?from=2018-06-13&to=2018-06-27&key=role', 20);
  await timeIt('matches_by_icp_1d', () => '/v1/matches?from=2018-06-20&to=2018-06-21&key=icp', 20);

  // ---- compression ----
  const size = async () => Number((await db.query<{ b: string }>(sql`SELECT hypertable_size('meter_readings')::text AS b`))[0]!.b);
  const before = await size();
  t = performance.now();
  await compressOldChunks(db, 0);
  figures.compress_s = Number(((performance.now() - t) / 1000).toFixed(1));
  const after = await size();
  figures.size_mb_before = Math.round(before / 1e6);
  figures.size_mb_compressed = Math.round(after / 1e6);
  const pullsC: number[] = [];
  for (let i = 0; i < 100; i++) { const s2 = performance.now(); await (await get(`/v1/icps/${pick()}/readings?from=2018-06-13&to=2018-06-27`)).text(); pullsC.push(performance.now() - s2); }
  figures.raw_pull_compressed_p50_ms = ms(pct(pullsC, 50));

  // ---- estimate for 200M rows ----
  const full = 200_000_000;
  const loadRate = figures.load_rows_per_s as number;
  const scale = full / load.received;
  figures.estimate_200m = {
    load_minutes: Math.round(full / loadRate / 60),
    load_minutes_one_free_core: Math.round(full / (figures.load_rows_per_cpu_s as number) / 60),
    readings_daily_refresh_minutes: Math.round(((figures.refresh_readings_daily_s as number) * scale) / 60),
    compress_minutes: Math.round(((figures.compress_s as number) * scale) / 60),
    ndjson_export_all_minutes: Math.round(full / (figures.ndjson_export_rows_per_s as number) / 60),
    storage_gb_uncompressed: Number(((before * scale) / 1e9).toFixed(1)),
    storage_gb_compressed: Number(((after * scale) / 1e9).toFixed(1)),
  };
  process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
} finally {
  await server.close();
  await db.close();
  if (!values.keep) { fs.rmSync(dir, { recursive: true, force: true }); await database.drop(); }
  else log(`kept ${dir}`);
}
