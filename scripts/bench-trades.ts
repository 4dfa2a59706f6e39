// npm run bench:trades -- [--batches 20] [--singles 4000] [--concurrency 16]
// Trades/s through POST /v1/trades/batch and through single POST /v1/trades, embedded database,
// in two cases: deliveries from today on (what traders trade: real-time aggregation, nothing to
// refresh) and deliveries in the past (a backfill: every commit refreshes the PnL hours it touched
// in the already materialised aggregate).
import { parseCli } from './cli';
import { report, startBenchServer } from './bench-support';

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

async function run(server: Awaited<ReturnType<typeof startBenchServer>>) {
  const headers = { authorization: server.auth, 'content-type': 'application/json' };
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

const figures: Record<string, string | number> = {};
for (const [name, start] of [['deliveries from today on', Date.now()], ['deliveries in 2024 (backfill)', Date.UTC(2024, 0, 1)]] as const) {
  firstDay = start;
  const server = await startBenchServer();
  try {
    const r = await run(server);
    figures[`${name}: batched trades/s`] = r.batchRate;
    figures[`${name}: single POST trades/s (concurrency ${concurrency})`] = r.singleRate;
    figures[`${name}: stored`] = r.stored + r.ok;
  } finally {
    await server.stop();
  }
}
figures['target (batched)'] = '>= 20,000 trades/s';
report('bench:trades (embedded TimescaleDB, server in a child process, client in this one)', figures);
