// npm run bench:trades -- [--batches 20] [--singles 4000] [--concurrency 16]
// Trades/s through POST /v1/trades/batch and through single POST /v1/trades, on the embedded
// database or (DATABASE_URL) a new database on that TimescaleDB server, in two cases: deliveries
// from today on (what traders trade: real-time aggregation, nothing to refresh) and deliveries in
// the past (a backfill: history of those days is stored and materialised by a server start first,
// so every commit refreshes the PnL hours it touched before it is answered).
import { sql } from '../server/db';
import { parseCli } from './cli';
import { benchDatabase, report, startBenchServer, type BenchServer } from './bench-support';

const { values } = parseCli(process.argv.slice(2), {
  batches: { type: 'string', default: '20' },
  singles: { type: 'string', default: '4000' },
  concurrency: { type: 'string', default: '16' },
}, 'usage: npm run bench:trades -- [--batches N (of 10,000)] [--singles N] [--concurrency N]');
const batches = Number(values.batches);
const singles = Number(values.singles);
const concurrency = Number(values.concurrency);

const traders = ['trader_1', 'trader_2', 'trader_3', 'trader_4', 'trader_5'];
let seq = 0;
let firstDay = Date.UTC(2024, 0, 1);
function makeTrade() {
  const n = seq++;
  const day = new Date(firstDay + (n % 30) * 86_400_000).toISOString().slice(0, 10);
  return {
    id: `bench-${n}`, price: 2000 + (n % 9000), quantity: ((n % 500) + 1) / 10, direction: n % 2 ? 'buy' : 'sell',
    delivery_day: day, delivery_hour: (n * 7) % 24 === 2 ? 3 : (n * 7) % 24, trader_id: traders[n % traders.length], execution_time: `${day}T05:00:00Z`,
  };
}

const headersOf = (server: BenchServer) => ({ authorization: server.auth, 'content-type': 'application/json' });

async function run(server: BenchServer) {
  const headers = headersOf(server);
  // Warm-up: JIT, the first chunks of the hypertable, the credential cache.
  await fetch(`${server.url}/v1/trades/batch`, { method: 'POST', headers, body: JSON.stringify(Array.from({ length: 2000 }, makeTrade)) });

  const bodies = Array.from({ length: batches }, () => JSON.stringify(Array.from({ length: 10_000 }, makeTrade)));
  let stored = 0;
  const t0 = performance.now();
  for (const body of bodies) {
    const res = await fetch(`${server.url}/v1/trades/batch`, { method: 'POST', headers, body });
    const result = (await res.json()) as { stored: number };
    stored += result.stored;
  }
  const batchSeconds = (performance.now() - t0) / 1000;

  const singleBodies = Array.from({ length: singles }, () => JSON.stringify(makeTrade()));
  let next = 0;
  let ok = 0;
  const t1 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < singleBodies.length) {
      const body = singleBodies[next++]!;
      const res = await fetch(`${server.url}/v1/trades`, { method: 'POST', headers, body });
      if (res.status === 200) ok++;
      await res.arrayBuffer();
    }
  }));
  return { stored, batchRate: stored / batchSeconds, ok, singleRate: ok / ((performance.now() - t1) / 1000) };
}

/** End of the materialised range and whether every trade below it is in the materialised rows. */
async function materialised(database: Awaited<ReturnType<typeof benchDatabase>>) {
  const db = await database.open();
  try {
    const [row] = await db.query<{ watermark: Date | null; materialised: number; trades: number }>(sql`
      WITH w AS (SELECT _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(mat_hypertable_id)) AS at
                 FROM _timescaledb_catalog.continuous_agg WHERE user_view_name = 'pnl_hourly')
      SELECT (SELECT at FROM w) AS watermark,
             (SELECT coalesce(sum(trades), 0)::int FROM pnl_hourly WHERE bucket < (SELECT at FROM w)) AS materialised,
             (SELECT count(*)::int FROM trades WHERE delivery_start < (SELECT at FROM w)) AS trades`);
    return row!;
  } finally {
    await db.close();
  }
}

const figures: Record<string, string | number> = {};
let engine = '';
for (const [name, start, backfill] of [['deliveries from today on', Date.now(), false], ['deliveries in 2024 (backfill)', Date.UTC(2024, 0, 1), true]] as const) {
  firstDay = start;
  const database = await benchDatabase('trades');
  engine = database.label;
  try {
    if (backfill) {
      // History of the same 30 days, materialised by the start of a server on it.
      const first = await startBenchServer({}, undefined, database);
      await fetch(`${first.url}/v1/trades/batch`, { method: 'POST', headers: headersOf(first), body: JSON.stringify(Array.from({ length: 5000 }, makeTrade)) });
      await first.stop();
    }
    const server = await startBenchServer({}, undefined, database);
    const r = await run(server);
    await server.stop();
    figures[`${name}: batched trades/s`] = r.batchRate;
    figures[`${name}: single POST trades/s (concurrency ${concurrency})`] = r.singleRate;
    figures[`${name}: stored`] = r.stored + r.ok;
    if (backfill) {
      const m = await materialised(database);
      figures[`${name}: materialised up to`] = m.watermark?.toISOString() ?? 'nothing';
      figures[`${name}: trades below it / in its materialised rows`] = `${m.trades} / ${m.materialised}${m.trades === m.materialised ? ' (every commit refreshed)' : ' (NOT refreshed)'}`;
    }
  } finally {
    await database.drop();
  }
}
figures['target (batched)'] = '>= 20,000 trades/s';
report(`bench:trades on ${engine}; server in a child process, client in this one`, figures);
