// Feed benchmark: deals/s from the exchange simulator through the gateway into a fresh database
// (embedded, or a new one on the TimescaleDB server of DATABASE_URL), and latency from a deal leaving the simulator to its trades_stored NOTIFY arriving
// at a LISTEN and at a socket.io-client through the live hub (p50/p99 at a steady rate). The
// throughput and socket.io figures are measured for the session protocol version 2 (seq
// committed with every batch) over the websocket and over RabbitMQ, and for version 1 frames
// (no seq) in the same run, as the base of the ratios. Everything runs in this one process and
// one thread (simulator, gateway, and PGlite when embedded), so the figures are conservative.
// `npm run bench:feed -- [--deals 50000] [--sim-rate 6000] [--rate 1000] [--seconds 10] [--amqp-url amqp://guest:guest@127.0.0.1:5672]`
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Db } from '../server/db';
import { benchDatabase, sendAtRate } from './bench-support';
import { migrate } from '../server/db/migrate';
import { FeedGateway } from '../server/feed/gateway';
import { channels } from '../server/live/events';
import type { TradesStoredEvent } from '../server/trades/store';
import { io, type Socket } from 'socket.io-client';
import { loadConfig } from '../server/config';
import type { ClientToServerEvents, ServerToClientEvents } from '../server/live/events';
import { start } from '../server/main';
import amqp from 'amqplib';
import { amqpTopology } from '../server/exchange/amqp-transport';
import { startExchangeSim, type ExchangeSim, type ExchangeSimOptions } from './exchange-sim';
import { parseOptions } from './cli';

const tz = 'Europe/Berlin';

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** How the simulator and the gateway talk: version 1 frames, or version 2 over the websocket or RabbitMQ. */
interface Link {
  name: string;
  sim: ExchangeSimOptions;
  url(sim: ExchangeSim): string;
  env(sim: ExchangeSim): Record<string, string>;
  cleanup(): Promise<void>;
}

function links(amqpUrl: string): Link[] {
  const prefix = `bench.feed.${process.pid}.${Date.now().toString(36)}`;
  const ws = (name: string, protocol: 1 | 2): Link => ({
    name, sim: { protocol }, url: (sim) => sim.url, env: (sim) => ({ EXCHANGE_WS_URL: sim.url }), cleanup: async () => {},
  });
  return [
    ws('v1 websocket (no seq)', 1),
    ws('v2 websocket (seq commits)', 2),
    {
      name: 'v2 RabbitMQ (seq commits, acks, confirms)',
      sim: { protocol: 2, transport: 'amqp', amqpUrl, amqpPrefix: prefix },
      url: () => amqpUrl,
      env: () => ({ EXCHANGE_AMQP_URL: amqpUrl, EXCHANGE_AMQP_PREFIX: prefix }),
      async cleanup() {
        const connection = await amqp.connect(amqpUrl);
        const channel = await connection.createChannel();
        const t = amqpTopology(prefix);
        await channel.deleteQueue(t.fromExchange);
        await channel.deleteQueue(t.toExchange);
        await channel.deleteExchange(t.exchange);
        await connection.close();
      },
    },
  ];
}

/** A fresh database (embedded, or a new one on DATABASE_URL's server), dropped again by done(). */
async function freshDb(name: string): Promise<{ db: Db; done(): Promise<void> }> {
  const database = await benchDatabase(name);
  if (!printedDatabase) process.stdout.write(`database: ${database.label}\n`);
  printedDatabase = true;
  const db = await database.open();
  await migrate(db);
  return { db, async done() { await db.close(); await database.drop(); } };
}
let printedDatabase = false;

/** Sustained ingestion: N deals pushed as fast as the simulator can, until all are stored. */
async function throughput(db: Db, deals: number, link: Link) {
  const sim = await startExchangeSim({ idPrefix: `bt${Date.now().toString(36)}`, ...link.sim });
  const gateway = new FeedGateway({ db, url: link.url(sim), tz, batchMax: 2000, batchMs: 10, amqpPrefix: link.sim.amqpPrefix, member: `bench-${Date.now().toString(36)}` });
  await gateway.start();
  await waitFor(() => gateway.connected, 10_000, 'connection');
  const started = performance.now();
  for (let sent = 0; sent < deals;) {
    for (let i = 0; i < 1000 && sent < deals; i++, sent++) sim.sendDeal();
    await new Promise((r) => setImmediate(r)); // let the gateway read and store between chunks
  }
  const sentMs = performance.now() - started;
  await waitFor(() => gateway.counts.stored >= deals, 300_000, 'all deals stored');
  const ms = performance.now() - started;
  await gateway.close();
  await sim.close();
  return { deals, sent_per_s: Math.round(deals / (sentMs / 1000)), stored_per_s: Math.round(deals / (ms / 1000)), seconds: +(ms / 1000).toFixed(2) };
}

/**
 * The simulator as its own process (as deployed) sending `rate` deals/s: the stored rate over
 * the steady part of the run shows whether the gateway keeps up.
 */
async function throughputSeparateSim(db: Db, rate: number, seconds: number) {
  const child = spawn(process.execPath, [...process.execArgv, 'scripts/exchange-sim.ts', '--port', '0', '--rate', String(rate)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const lines = createInterface({ input: child.stdout! });
    const [first] = (await once(lines, 'line')) as [string];
    const url = (JSON.parse(first) as { url: string }).url.replace('localhost', '127.0.0.1');
    const gateway = new FeedGateway({ db, url, tz, batchMax: 2000, batchMs: 10, member: 'bench-separate' });
    await gateway.start();
    await waitFor(() => gateway.connected, 10_000, 'connection');
    await new Promise((r) => setTimeout(r, 1000)); // warm-up
    const [c0, t0] = [gateway.counts.stored, performance.now()];
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const [c1, t1] = [gateway.counts.stored, performance.now()];
    await gateway.close();
    // Deals not yet read wait in the simulator's socket buffer (TCP backpressure), not here.
    const stored = Math.round((c1 - c0) / ((t1 - t0) / 1000));
    return { offered_per_s: rate, stored_per_s: stored, keeps_up: stored >= 0.95 * rate };
  } finally {
    child.kill('SIGTERM');
  }
}

/** Steady rate: latency from sending a deal to its trades_stored NOTIFY at a LISTEN. */
async function notifyLatency(db: Db, rate: number, seconds: number) {
  const sim = await startExchangeSim({ idPrefix: `bl${Date.now().toString(36)}` });
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  const unlisten = await db.listen(channels.tradesStored, (payload) => {
    const now = performance.now();
    const event = JSON.parse(payload) as TradesStoredEvent;
    for (const t of event.trades ?? []) {
      const at = sentAt.get(t.id);
      if (at !== undefined) { latencies.push(now - at); sentAt.delete(t.id); }
    }
  });
  const gateway = new FeedGateway({ db, url: sim.url, tz, member: 'bench-notify' });
  await gateway.start();
  await waitFor(() => gateway.connected, 10_000, 'connection');
  const total = rate * seconds;
  const started = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
      for (; sent < due; sent++) {
        const deal = sim.makeDeal();
        sentAt.set(deal.id, performance.now());
        sim.send({ deal_confirmation: deal });
      }
      if (sent >= total) { clearInterval(timer); resolve(); }
    }, 2);
  });
  await waitFor(() => latencies.length >= total, 60_000, 'every NOTIFY');
  await unlisten();
  await gateway.close();
  await sim.close();
  latencies.sort((a, b) => a - b);
  return { rate, deals: total, p50_ms: +percentile(latencies, 50).toFixed(1), p99_ms: +percentile(latencies, 99).toFixed(1), max_ms: +latencies.at(-1)!.toFixed(1) };
}

/**
 * Deal -> socket.io-client `deal` event latency through the whole path as deployed: simulator ->
 * gateway -> trades -> NOTIFY -> live hub -> Socket.IO -> client, the server started with
 * EXCHANGE_WS_URL on the same embedded database, the client subscribed to every trader and day
 * the deals are for.
 */
async function socketIoLatency(db: Db, rate: number, seconds: number, link: Link) {
  const sim = await startExchangeSim({ idPrefix: `bs${Date.now().toString(36)}`, ...link.sim });
  const deals = Array.from({ length: rate * seconds }, () => sim.makeDeal());
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', ADMIN_USER: 'bench', ADMIN_PASSWORD: 'bench-password', LOG_LEVEL: 'error', ...link.env(sim) });
  const server = await start(config, { db });
  const client: Socket<ServerToClientEvents, ClientToServerEvents> = io(server.url, { transports: ['websocket'], extraHeaders: { Authorization: `Basic ${Buffer.from('bench:bench-password').toString('base64')}` } });
  try {
    await new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); client.once('connect_error', reject); });
    const rooms = new Set(deals.map((d) => `${d.trader_id}|${d.delivery_day}`));
    for (const room of rooms) {
      const [trader_id, delivery_day] = room.split('|') as [string, string];
      const ack = await client.timeout(10_000).emitWithAck('subscribe', { trader_id, delivery_day });
      if (!ack.ok) throw new Error(`subscribe ${room}: ${ack.error}`);
    }
    await sim.waitForClients(1);
    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    client.on('deal', (t) => {
      const at = sentAt.get(t.id);
      if (at !== undefined) { latencies.push(performance.now() - at); sentAt.delete(t.id); }
    });
    await sendAtRate(sim, deals, rate, sentAt);
    await waitFor(() => latencies.length >= deals.length, 60_000, 'every deal at the client');
    latencies.sort((a, b) => a - b);
    return { rate, deals: deals.length, p50_ms: +percentile(latencies, 50).toFixed(1), p99_ms: +percentile(latencies, 99).toFixed(1), max_ms: +latencies.at(-1)!.toFixed(1) };
  } finally {
    client.close();
    await server.close();
    await sim.close();
  }
}

async function main() {
  const { values } = parseOptions('bench-feed', { options: {
    deals: { type: 'string', default: '50000' }, rate: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '10' },
    'sim-rate': { type: 'string', default: '6000' }, 'amqp-url': { type: 'string', default: process.env.EXCHANGE_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672' },
  } });
  const results: { link: string; stored_per_s: number; p50_ms: number; p99_ms: number }[] = [];
  for (const link of links(values['amqp-url'])) {
    try {
      // Each its own database: the same starting point for every link.
      const fresh = await freshDb('feed');
      const t = await throughput(fresh.db, Number(values.deals), link);
      process.stdout.write(`${link.name}: throughput, simulator in this process: ${JSON.stringify(t)}\n`);
      await fresh.done();
      // Its own database again, as deployed: a table already holding this run's ~50k deals for today
      // would make every live PnL report aggregate far more raw rows than a desk produces.
      const live = await freshDb('feed_live');
      const l = await socketIoLatency(live.db, Number(values.rate), Number(values.seconds), link);
      process.stdout.write(`${link.name}: latency deal -> socket.io-client: ${JSON.stringify(l)}\n`);
      await live.done();
      results.push({ link: link.name, stored_per_s: t.stored_per_s, p50_ms: l.p50_ms, p99_ms: l.p99_ms });
    } finally {
      await link.cleanup();
    }
  }
  const base = results[0]!;
  for (const r of results.slice(1)) {
    process.stdout.write(`${r.link} vs ${base.link}: throughput x${(r.stored_per_s / base.stored_per_s).toFixed(2)}, socket.io p50 x${(r.p50_ms / base.p50_ms).toFixed(2)}, p99 x${(r.p99_ms / base.p99_ms).toFixed(2)}\n`);
  }
  const { db, done } = await freshDb('feed');
  const sep = await throughputSeparateSim(db, Number(values['sim-rate']), Number(values.seconds));
  process.stdout.write(`throughput, v2 websocket, simulator as its own process: ${JSON.stringify(sep)}\n`);
  const n = await notifyLatency(db, Number(values.rate), Number(values.seconds));
  process.stdout.write(`latency deal -> trades_stored NOTIFY (v2 websocket): ${JSON.stringify(n)}\n`);
  await done();
}

void main().catch((error: Error) => { process.stderr.write(`bench-feed: ${error.stack}\n`); process.exit(1); });
