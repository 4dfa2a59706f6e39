// npm run bench:orders -- [--orders 5000] [--concurrency 32] [--rate 200] [--seconds 10] [--acks on|off]
// Placements/s through POST /v1/orders at a fixed concurrency, and the time from placing an order
// to the exchange acknowledging it at a steady rate, on the embedded database or (DATABASE_URL)
// a new database on that TimescaleDB server. The server runs in a child process; the exchange
// (the fake of the order tests, acknowledging at once over the websocket) and the client in this one.
// --acks off: the exchange receives the orders but sends no execution reports back, which shows
// what applying the acknowledgements costs the server.
import { localDay } from '../server/time/market-time';
import { startFakeExchange } from '../test/helpers/fake-exchange-orders';
import { parseCli } from './cli';
import { benchDatabase, percentile, report, startBenchServer } from './bench-support';

const { values } = parseCli(process.argv.slice(2), {
  orders: { type: 'string', default: '5000' },
  concurrency: { type: 'string', default: '32' },
  rate: { type: 'string', default: '200' },
  seconds: { type: 'string', default: '10' },
  acks: { type: 'string', default: 'on' },
}, 'usage: npm run bench:orders -- [--orders N] [--concurrency N] [--rate orders/s] [--seconds N] [--acks on|off]');
const total = Number(values.orders);
const concurrency = Number(values.concurrency);
const rate = Number(values.rate);
const seconds = Number(values.seconds);
if (values.acks !== 'on' && values.acks !== 'off') throw new Error(`--acks: on or off, not ${JSON.stringify(values.acks)}`);
const acks = values.acks === 'on';

const acked = new Map<string, number>();
const exchange = await startFakeExchange({ autoAck: acks, onNew: (o) => { acked.set(o.client_order_id, performance.now()); } });
const database = await benchDatabase('orders');
const server = await startBenchServer({ EXCHANGE_WS_URL: exchange.url, ORDER_EXPIRY_SWEEP_MS: '600000', FEED_BATCH_MS: '2', LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' }, undefined, database);
const headers = { authorization: server.auth, 'content-type': 'application/json' };
const traders = Array.from({ length: 64 }, (_, i) => `bench_${i}`);
const day = localDay(new Date(Date.now() + 2 * 86_400_000), 'Europe/Berlin');
let n = 0;
const body = () => {
  const i = n++;
  return JSON.stringify({ trader_id: traders[i % traders.length], side: 'buy', type: 'limit', delivery_day: day, delivery_hour: i % 24 === 2 ? 3 : i % 24, quantity: ((i % 50) + 1) / 10, limit_price: 2000 + (i % 3000) });
};

try {
  for (const t of traders) {
    const res = await fetch(`${server.url}/v1/accounts/${t}/cash`, { method: 'POST', headers, body: JSON.stringify({ amount: '100000000.00' }) });
    if (!res.ok) throw new Error(`funding ${t}: ${res.status} ${await res.text()}`);
  }
  // Warm-up
  for (let i = 0; i < 200; i++) await (await fetch(`${server.url}/v1/orders`, { method: 'POST', headers, body: body() })).arrayBuffer();

  let next = 0;
  let ok = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      next++;
      const res = await fetch(`${server.url}/v1/orders`, { method: 'POST', headers, body: body() });
      if (res.status === 201) ok++;
      await res.arrayBuffer();
    }
  }));
  const placeRate = ok / ((performance.now() - t0) / 1000);

  // Steady rate: place -> the exchange has it (and acknowledges at once).
  const placedAt = new Map<string, number>();
  const steady: Promise<void>[] = [];
  const count = rate * seconds;
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const at = performance.now();
    steady.push(fetch(`${server.url}/v1/orders`, { method: 'POST', headers, body: body() }).then(async (res) => {
      const order = (await res.json()) as { id: string };
      placedAt.set(order.id, at);
    }));
  }
  await Promise.all(steady);
  const deadline = Date.now() + 60_000;
  while ([...placedAt.keys()].some((id) => !acked.has(id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const latencies = [...placedAt].filter(([id]) => acked.has(id)).map(([id, at]) => acked.get(id)! - at).sort((a, b) => a - b);
  report(`bench:orders on ${database.label}; server in a child process, client and exchange in this one`, {
    [`placements/s (POST /v1/orders, concurrency ${concurrency}, ${total} orders)`]: placeRate,
    [`place -> at the exchange p50 ms (steady ${rate}/s for ${seconds} s)`]: percentile(latencies, 50),
    'place -> at the exchange p99 ms': percentile(latencies, 99),
    'at the exchange / placed at the steady rate': `${latencies.length} / ${placedAt.size}`,
    'execution reports': acks ? 'on (each order acknowledged at once)' : 'off',
    target: '>= 1,000 placements/s embedded',
  });
} finally {
  await server.stop();
  await exchange.close();
}
