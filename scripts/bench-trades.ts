// npm run bench:trades -- [--batches 20] [--singles 4000] [--concurrency 16]
// Trades/s through POST /v1/trades/batch and through single POST /v1/trades, embedded database.
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
function makeTrade() {
  const n = seq++;
  const day = new Date(Date.UTC(2024, 0, 1) + (n % 365) * 86_400_000).toISOString().slice(0, 10);
  return {
    id: `bench-${n}`, price: 2000 + (n % 9000), quantity: ((n % 500) + 1) / 10, direction: n % 2 ? 'buy' : 'sell',
    delivery_day: day, delivery_hour: (n * 7) % 24 === 2 ? 3 : (n * 7) % 24, trader_id: traders[n % traders.length], execution_time: `${day}T05:00:00Z`,
  };
}

const server = await startBenchServer();
try {
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
  const singleSeconds = (performance.now() - t1) / 1000;

  report('bench:trades (embedded TimescaleDB, server in a child process, client in this one)', {
    'batched: trades stored': stored,
    'batched: seconds': batchSeconds,
    'batched: trades/s': stored / batchSeconds,
    'single POST: trades stored': ok,
    'single POST: concurrency': concurrency,
    'single POST: trades/s': ok / singleSeconds,
    'target (batched)': '>= 20,000 trades/s',
  });
} finally {
  await server.stop();
}
