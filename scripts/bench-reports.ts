// npm run bench:reports [-- --sizes 1000000,10000000 --requests 200 --deals 100 --dir PATH --keep]
// p50/p99 of GET /v1/reports/pnl for one trader-day at each size of the trades table (embedded
// database on disk), and the time from a trade stored over REST to the updated `pnl` row at a
// socket.io-client. Rows are bulk-inserted straight into `trades` with their PnL product sums (no
// idempotency keys: this is load, not ingestion).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { io } from 'socket.io-client';
import { loadConfig } from '../server/config';
import { openEmbedded } from '../server/db/embedded';
import { benchDatabase } from './bench-support';
import type { PnlUpdate } from '../server/live/events';
import { sql } from '../server/db';
import { createLogger } from '../server/log';
import { start } from '../server/main';
import { hoursOfDay, localDay } from '../server/time/market-time';
import { addToPnlSums } from '../server/trades/pnl-sums';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000000,10000000' },
    requests: { type: 'string', default: '200' },
    deals: { type: 'string', default: '100' },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const sizes = values.sizes!.split(',').map(Number);
const requests = Number(values.requests);
const deals = Number(values.deals);
const dir = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'powerdesk-bench-reports-'));
const tz = 'Europe/Berlin';
const traders = 50;
const days = 365;
const firstDay = Date.UTC(2025, 0, 1);
const benchTrader = 'bench_007';
const benchDay = '2025-01-02'; // the data fill days in order: this day exists at every size
const user = { name: 'bench', password: 'bench-password' };
const auth = `Basic ${Buffer.from(`${user.name}:${user.password}`).toString('base64')}`;

const columns = [
  { name: 'id', type: 'text' }, { name: 'trader_id', type: 'text' }, { name: 'direction', type: 'text' },
  { name: 'price', type: 'numeric' }, { name: 'quantity', type: 'numeric' }, { name: 'delivery_day', type: 'date' },
  { name: 'delivery_start', type: 'timestamptz' }, { name: 'delivery_end', type: 'timestamptz' },
  { name: 'execution_time', type: 'timestamptz' }, { name: 'source', type: 'text' },
];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
function summary(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  return `p50 ${fmt(percentile(s, 50))}  p99 ${fmt(percentile(s, 99))}  (n=${s.length})`;
}

// Deterministic pseudo-random numbers: the same data on every run.
let seed = 42;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);

const dayList = Array.from({ length: days }, (_, i) => new Date(firstDay + i * 86_400_000).toISOString().slice(0, 10));
const slotsByDay = dayList.map((d) => hoursOfDay(d, tz));

async function main() {
  // --dir reuses an embedded database loaded by an earlier run; otherwise a fresh one on either engine.
  const database = values.dir || !process.env.DATABASE_URL ? undefined : await benchDatabase('reports');
  if (!database) fs.mkdirSync(dir, { recursive: true });
  console.log(database ? `database: ${database.label}` : `database: embedded TimescaleDB (PGlite, in this process) under ${dir}`);
  const db = database ? await database.open() : await openEmbedded(dir);
  /** Rows in `columns` order into trades, and into the PnL product sums, in one transaction. */
  const load = (rows: unknown[][]) => db.transaction(async (tx) => {
    await tx.bulkInsert('trades', columns, rows);
    await addToPnlSums(tx, rows.map(([, trader_id, direction, price, quantity, , delivery_start, delivery_end]) => ({
      trader_id: trader_id as string, direction: direction as 'buy' | 'sell', price: price as string, quantity: quantity as string,
      delivery_start: delivery_start as Date, delivery_end: delivery_end as Date,
    })));
  });
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', ADMIN_USER: user.name, ADMIN_PASSWORD: user.password, LOG_LEVEL: 'warn', DATA_DIR: dir });
  const server = await start(config, { db, log: createLogger('warn') });
  const freshness = server.deps.pnlFreshness!;
  const get = async (url: string): Promise<unknown> => {
    let res: Response;
    try {
      res = await fetch(`${server.url}${url}`, { headers: { authorization: auth } });
    } catch {
      // A kept-alive connection the server closed while the database was busy: once more.
      res = await fetch(`${server.url}${url}`, { headers: { authorization: auth } });
    }
    if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const [count] = await db.query<{ n: number }>(sql`SELECT count(*)::int8 AS n FROM trades`);
  let inserted = count!.n;
  const results: string[] = [];

  for (const size of sizes) {
    // ---- load
    if (inserted < size) {
      console.log(`loading trades ${inserted} -> ${size} ...`);
      const started = performance.now();
      const from = inserted;
      const perChunk = 50_000;
      let lastReport = started;
      for (let i = inserted; i < size; i += perChunk) {
        const rows: unknown[][] = [];
        for (let j = i; j < Math.min(size, i + perChunk); j++) {
          // Spread over days and hours in order of j: each chunk touches one or two days.
          const position = (j % 10_000_000) / 10_000_000;
          const dayIndex = Math.floor(position * days);
          const slots = slotsByDay[dayIndex]!;
          const slot = slots[Math.floor(rand() * slots.length)]!;
          const quarter = rand() < 0.25;
          const startMs = slot.start.getTime() + (quarter ? Math.floor(rand() * 4) * 900_000 : 0);
          const endMs = startMs + (quarter ? 900_000 : 3_600_000);
          rows.push([
            `b${j}`, `bench_${String(Math.floor(rand() * traders)).padStart(3, '0')}`, rand() < 0.5 ? 'buy' : 'sell',
            (20 + rand() * 100).toFixed(2), (0.1 + rand() * 50).toFixed(1), dayList[dayIndex], new Date(startMs), new Date(endMs),
            new Date(startMs - 3_600_000), 'file',
          ]);
        }
        await load(rows);
        inserted = Math.min(size, i + perChunk);
        if (performance.now() - lastReport > 10_000) {
          lastReport = performance.now();
          console.log(`  ${inserted} rows, ${Math.round((inserted - from) / ((performance.now() - started) / 1000))} rows/s`);
        }
      }
      const seconds = (performance.now() - started) / 1000;
      console.log(`  loaded in ${seconds.toFixed(1)} s (${Math.round((size - from) / seconds)} rows/s)`);
      const t = performance.now();
      await freshness.materialiseHistory();
      const refreshS = (performance.now() - t) / 1000;
      console.log(`  materialised pnl_hourly in ${refreshS.toFixed(1)} s`);
      results.push(`${size} trades: materialising past days took ${refreshS.toFixed(1)} s`);
    }

    // ---- report latency, a past day (materialised) and today (real-time aggregation)
    const today = localDay(new Date(), tz);
    const todaySlots = hoursOfDay(today, tz);
    const [existing] = await db.query<{ n: number }>(sql`SELECT count(*)::int8 AS n FROM trades WHERE trader_id = ${benchTrader} AND delivery_day = ${today}::date`);
    if (existing!.n === 0) {
      const rows = Array.from({ length: 500 }, (_, j) => {
        const slot = todaySlots[j % todaySlots.length]!;
        return [`today-${j}`, benchTrader, j % 2 ? 'buy' : 'sell', '55.00', '1.5', today, slot.start, slot.end, new Date(), 'api'];
      });
      await load(rows);
    }
    for (const [label, day] of [['past day (materialised)', benchDay], ['today (product sums)', today]] as const) {
      const url = `/v1/reports/pnl?trader_id=${benchTrader}&delivery_day=${day}`;
      const first = await get(url) as { total: { trades: number } };
      for (let i = 0; i < 10; i++) await get(url);
      const samples: number[] = [];
      for (let i = 0; i < requests; i++) {
        const t = performance.now();
        await get(url);
        samples.push(performance.now() - t);
      }
      const line = `${size} trades: GET /v1/reports/pnl ${label}, ${first.total.trades} trades that day: ${summary(samples)}`;
      console.log(line);
      results.push(line);
    }
  }

  // ---- trade stored -> pnl row at a socket.io-client
  const client = io(server.url, { extraHeaders: { Authorization: auth }, transports: ['websocket'] });
  await new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); client.once('connect_error', reject); });
  const today = localDay(new Date(), tz);
  for (const [label, day] of [['today (real-time)', today], ['a past day (late deal: refresh of the touched hour)', benchDay]] as const) {
    const ack = await client.timeout(10_000).emitWithAck('subscribe', { trader_id: benchTrader, delivery_day: day });
    if (!ack.ok) throw new Error(ack.error);
    const fromPost: number[] = [];
    let beforeResponse = 0;
    for (let i = 0; i < deals; i++) {
      const id = `live-${day}-${Date.now()}-${i}`;
      const hour = 10 + (i % 10);
      const arrived = new Promise<number>((resolve) => {
        const handler = (u: PnlUpdate) => {
          if (u.delivery_day !== day || !u.hour.label.startsWith(String(hour).padStart(2, '0'))) return;
          client.off('pnl', handler);
          resolve(performance.now());
        };
        client.on('pnl', handler);
      });
      const t0 = performance.now();
      const res = await fetch(`${server.url}/v1/trades`, {
        method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify({ id, price: 5000, quantity: 1, direction: 'buy', delivery_day: day, delivery_hour: hour, trader_id: benchTrader, execution_time: new Date().toISOString() }),
      });
      const t1 = performance.now();
      if (!res.ok) throw new Error(`POST /v1/trades: ${res.status} ${await res.text()}`);
      const t2 = await arrived;
      fromPost.push(t2 - t0);
      if (t2 <= t1) beforeResponse += 1;
    }
    // Measured from sending the POST: the pnl row often arrives before the POST's own response.
    const line = `${inserted} trades: POST /v1/trades sent -> pnl row at socket.io-client, ${label}: ${summary(fromPost)}; before the REST response in ${beforeResponse}/${deals}`;
    console.log(line);
    results.push(line);
  }
  const stats = freshness.stats;
  results.push(`touched-hour refreshes: ${stats.refreshes}, mean ${(stats.refreshMs / Math.max(1, stats.refreshes)).toFixed(1)} ms each`);
  client.close();
  await server.close();
  await db.close();
  if (!values.keep && !values.dir) fs.rmSync(dir, { recursive: true, force: true });
  if (database && !values.keep) await database.drop();
  console.log('\nsummary');
  for (const r of results) console.log(`  ${r}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
