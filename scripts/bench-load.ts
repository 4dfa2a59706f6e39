// Mixed-load benchmark: the exchange feed at a steady rate through the gateway, the live hub and
// Socket.IO, while N clients read today's PnL report of the traders the deals are for, over and
// over. Prints deal -> socket.io-client `deal` p50/p99 for each number of readers (0 first, the
// base), the report p50/p99, and how many report computations (in how many rounds) served the
// reads. The traders' day is preloaded with trades through the ingestion, so it holds many rows
// (as on a busy desk). The simulator, gateway, server (PGlite too, when embedded) and the
// Socket.IO client run in this process; the readers in one of their own, as dashboards run in
// their own browsers (`--readers-in this` puts them in this process too).
// `npm run bench:load -- [--rate 500] [--seconds 10] [--readers 0,50] [--readers-in own|this] [--today-rows 20000]`
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { io, type Socket } from 'socket.io-client';
import { loadConfig } from '../server/config';
import { sql } from '../server/db';
import { migrate } from '../server/db/migrate';
import type { ClientToServerEvents, ServerToClientEvents } from '../server/live/events';
import { start } from '../server/main';
import { hoursOfDay, localDay } from '../server/time/market-time';
import type { TradeRow } from '../server/trades/normalize';
import { ingestTrades } from '../server/trades/store';
import { benchDatabase, percentile, sendAtRate } from './bench-support';
import { parseOptions } from './cli';
import { startExchangeSim } from './exchange-sim';

const tz = 'Europe/Berlin';
const auth = `Basic ${Buffer.from('bench:bench-password').toString('base64')}`;
const traders = ['trader_1', 'trader_2', 'trader_3', 'trader_4', 'trader_5'];

/**
 * N report readers reading over and over until stopped: in a process of their own (as
 * dashboards are in their own browsers), or in this one (`--readers-in this`).
 */
function startReaders(readers: number, urls: string[], sameProcess: boolean): { ready: Promise<void>; stop(): Promise<number[]> } {
  if (sameProcess) {
    let stop = false;
    const times: number[] = [];
    const read = async (url: string) => {
      while (!stop) {
        const t0 = performance.now();
        // A kept-alive connection the server closed while it was busy: once more.
        const res = await fetch(url, { headers: { authorization: auth } }).catch(() => fetch(url, { headers: { authorization: auth } }));
        if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
        times.push(performance.now() - t0);
      }
    };
    const running = Array.from({ length: readers }, (_, i) => read(urls[i % urls.length]!));
    return { ready: Promise.resolve(), async stop() { stop = true; await Promise.all(running); return times; } };
  }
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./bench-load-readers.ts', import.meta.url)), String(readers), auth, ...urls], { stdio: ['pipe', 'pipe', 'inherit'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const ready = new Promise<void>((resolve, reject) => {
    const check = () => { if (output.includes('ready\n')) resolve(); };
    child.stdout!.on('data', check);
    void exited.then((code) => reject(new Error(`the readers' process exited with ${code} before it was ready`)));
  });
  return {
    ready,
    async stop() {
      child.stdin!.end('stop\n');
      const code = await exited;
      if (code !== 0) throw new Error(`the readers' process exited with ${code}`);
      const line = output.trim().split('\n').pop()!;
      return (JSON.parse(line) as { times: number[] }).times;
    },
  };
}

const ms = (sorted: number[], p: number) => +percentile(sorted, p).toFixed(1);

async function main() {
  const { values } = parseOptions('bench-load', { options: {
    rate: { type: 'string', default: '500' }, seconds: { type: 'string', default: '10' },
    readers: { type: 'string', default: '0,50' }, 'readers-in': { type: 'string', default: 'own' }, 'today-rows': { type: 'string', default: '20000' }, warmup: { type: 'string', default: '3' },
  } });
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  const readerCounts = values.readers.split(',').map(Number);
  const todayRows = Number(values['today-rows']);
  if (!['own', 'this'].includes(values['readers-in'])) throw new Error(`--readers-in: own (a process of their own) or this (this process), not ${values['readers-in']}`);
  const sameProcess = values['readers-in'] === 'this';

  const database = await benchDatabase('load');
  process.stdout.write(`database: ${database.label}\n`);
  const db = await database.open();
  await migrate(db);
  const today = localDay(new Date(), tz);
  const slots = hoursOfDay(today, tz);
  for (const trader of traders) {
    for (let i = 0; i < todayRows; i += 10_000) {
      const rows: TradeRow[] = Array.from({ length: Math.min(10_000, todayRows - i) }, (_, k) => {
        const j = i + k;
        const slot = slots[j % slots.length]!;
        return {
          id: `pre-${trader}-${j}`, trader_id: trader, direction: j % 2 ? 'buy' : 'sell', price: (30 + (j % 70)).toFixed(2), quantity: (1 + (j % 20) / 2).toFixed(1),
          delivery_day: today, delivery_start: slot.start, delivery_end: slot.end, execution_time: new Date(slot.start.getTime() - 3_600_000),
        };
      });
      await ingestTrades(db, rows, 'file', tz, new Date());
    }
  }
  process.stdout.write(`preloaded ${todayRows} trades for each of ${traders.length} traders today (${today})\n`);

  const sim = await startExchangeSim({ idPrefix: `bload${Date.now().toString(36)}`, traders });
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', ADMIN_USER: 'bench', ADMIN_PASSWORD: 'bench-password', LOG_LEVEL: 'error', EXCHANGE_WS_URL: sim.url });
  const server = await start(config, { db, soleUser: true });
  const client: Socket<ServerToClientEvents, ClientToServerEvents> = io(server.url, { transports: ['websocket'], extraHeaders: { Authorization: auth } });
  const results: { readers: number; deal_p50_ms: number; deal_p99_ms: number; report_p50_ms?: number; report_p99_ms?: number; reports?: number; computed?: number; rounds?: number }[] = [];
  try {
    await new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); client.once('connect_error', reject); });
    await sim.waitForClients(1);
    const subscribed = new Set<string>();
    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    client.on('deal', (t) => {
      const at = sentAt.get(t.id);
      if (at !== undefined) { latencies.push(performance.now() - at); sentAt.delete(t.id); }
    });

    // Warm-up at the same rate, not measured: connections, first reports, JIT.
    const phases = [{ readers: 0, warmup: true }, ...readerCounts.map((readers) => ({ readers, warmup: false }))];
    for (const { readers, warmup } of phases) {
      if (warmup && !Number(values.warmup)) continue;
      const phaseSeconds = warmup ? Number(values.warmup) : seconds;
      const deals = Array.from({ length: rate * phaseSeconds }, () => sim.makeDeal());
      for (const room of new Set(deals.map((d) => `${d.trader_id}|${d.delivery_day}`))) {
        if (subscribed.has(room)) continue;
        const [trader_id, delivery_day] = room.split('|') as [string, string];
        const ack = await client.timeout(60_000).emitWithAck('subscribe', { trader_id, delivery_day });
        if (!ack.ok) throw new Error(`subscribe ${room}: ${ack.error}`);
        subscribed.add(room);
      }
      latencies.length = 0;
      const reportMs: number[] = [];
      const computedBefore = server.deps.reports!.stats.computed;
      const roundsBefore = server.deps.reports!.stats.rounds;
      const urls = traders.map((t) => `${server.url}/v1/reports/pnl?trader_id=${t}&delivery_day=${today}`);
      const readersDone = readers ? startReaders(readers, urls, sameProcess) : undefined;
      await readersDone?.ready;
      await sendAtRate(sim, deals, rate, sentAt);
      const deadline = Date.now() + 120_000;
      while (latencies.length < deals.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      if (readersDone) reportMs.push(...(await readersDone.stop()));
      if (latencies.length < deals.length) throw new Error(`only ${latencies.length} of ${deals.length} deals reached the client`);
      latencies.sort((a, b) => a - b);
      reportMs.sort((a, b) => a - b);
      if (warmup) { process.stdout.write(`warm-up: ${deals.length} deals in ${phaseSeconds} s\n`); continue; }
      const row = {
        readers, deal_p50_ms: ms(latencies, 50), deal_p99_ms: ms(latencies, 99),
        ...(readers ? { report_p50_ms: ms(reportMs, 50), report_p99_ms: ms(reportMs, 99), reports: reportMs.length, computed: server.deps.reports!.stats.computed - computedBefore, rounds: server.deps.reports!.stats.rounds - roundsBefore } : {}),
      };
      results.push(row);
      process.stdout.write(`${rate} deals/s for ${seconds} s, ${readers} report readers: ${JSON.stringify(row)}\n`);
    }
    const base = results[0]!;
    for (const r of results.slice(1)) {
      process.stdout.write(`${r.readers} readers vs ${base.readers}: deal -> socket.io p50 x${(r.deal_p50_ms / base.deal_p50_ms).toFixed(2)}, p99 x${(r.deal_p99_ms / base.deal_p99_ms).toFixed(2)}; ${r.reports} reports from ${r.computed} computations in ${r.rounds} rounds\n`);
    }
    const [count] = await db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM trades WHERE delivery_day = ${today}::date`);
    process.stdout.write(`trades for today at the end: ${count!.n}\n`);
    // What the readers were served adds up: the report's trade count is the table's.
    const res = await fetch(`${server.url}/v1/reports/pnl?trader_id=${traders[0]}&delivery_day=${today}`, { headers: { authorization: auth } });
    const report = (await res.json()) as { total: { trades: number } };
    const [own] = await db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM trades WHERE delivery_day = ${today}::date AND trader_id = ${traders[0]} AND recalled_at IS NULL`);
    if (report.total.trades !== own!.n) throw new Error(`report of ${traders[0]} counts ${report.total.trades} trades, the table ${own!.n}`);
    process.stdout.write(`report of ${traders[0]} today: ${report.total.trades} trades, as in the table\n`);
  } finally {
    client.close();
    await server.close();
    await sim.close();
    await db.close();
    await database.drop();
  }
}

void main().catch((error: Error) => { process.stderr.write(`bench-load: ${error.stack}\n`); process.exit(1); });
