// Exchange simulator: a websocket server that pushes deal confirmations like the exchange does,
// for several traders and the products still open for trading (gate closure), with optional
// duplicates, malformed frames, bursts and dropped connections. `npm run exchange-sim -- --port 9001 --rate 20`; tests and benches start
// it in-process with startExchangeSim().
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, WebSocket } from 'ws';
import { dayBounds, defaultGateClosureMinutes, gateClosure, hoursOfDay, localDay, pad } from '../server/time/market-time';
import { parseOptions } from './cli';

export interface SimDeal {
  id: string;
  price: number;
  quantity: number;
  direction: 'buy' | 'sell';
  delivery_day: string;
  delivery_hour: string;
  trader_id: string;
  execution_time: string;
}

export interface ExchangeSimOptions {
  port?: number;
  host?: string;
  /** Deals per second, spread evenly; 0 sends only what send()/sendDeal() are asked to. */
  rate?: number;
  traders?: string[];
  tz?: string;
  /** Share of deals sent a second time a little later (the exchange re-sends). */
  duplicates?: number;
  /** Share of frames that are broken (bad JSON, missing or wrong fields). */
  malformed?: number;
  /** Share of hourly deals replaced by quarter-hour products. */
  quarterHours?: number;
  /** Trading of a product closes this many minutes before its delivery starts (default 5). */
  gateClosureMinutes?: number;
  /** Every this many ms, send burstSize deals at once. */
  burstEvery?: number;
  burstSize?: number;
  /** Every this many ms, cut every connection (the gateway must reconnect). */
  dropEvery?: number;
  /** On each new connection, re-send the last N deals (as exchanges replay unacknowledged confirmations). */
  replay?: number;
  /** Use the key trade_confirmation for this share of deals. */
  synonym?: number;
  /** Deal ids start with this (default: a per-run prefix, so reruns do not collide). */
  idPrefix?: string;
  random?: () => number;
  now?: () => Date;
}

export interface ExchangeSim extends EventEmitter {
  url: string;
  port: number;
  /** Every deal sent so far, in order (duplicates once). */
  readonly deals: SimDeal[];
  /** Frames sent so far (all kinds), per client. */
  framesSent: number;
  clientCount(): number;
  waitForClients(n: number, timeoutMs?: number): Promise<void>;
  /** A new realistic deal (not sent). */
  makeDeal(overrides?: Partial<SimDeal>): SimDeal;
  /** Sends a deal confirmation to every client and returns it. */
  sendDeal(overrides?: Partial<SimDeal>, key?: 'deal_confirmation' | 'trade_confirmation'): SimDeal;
  /** Sends any frame (object -> JSON, string as is) to every client. */
  send(frame: unknown): void;
  dropConnections(): void;
  /** false: stop answering pings while keeping the connection open (a dead link). */
  answerPings(on: boolean): void;
  /** Stops the generated traffic (rate, bursts, drops); the server keeps running. */
  stop(): void;
  close(): Promise<void>;
}

const malformedFrames: ((d: SimDeal) => string)[] = [
  (d) => JSON.stringify({ deal_confirmation: d }).slice(0, -7),
  (d) => JSON.stringify({ deal_confirmation: { ...d, quantity: -d.quantity } }),
  (d) => JSON.stringify({ deal_confirmation: { ...d, direction: 'hold' } }),
  (d) => { const { price: _p, ...rest } = d; return JSON.stringify({ deal_confirmation: rest }); },
  (d) => JSON.stringify({ deal_confirmation: { ...d, delivery_hour: '25-26' } }),
  (d) => JSON.stringify({ heartbeat: d.execution_time }),
];

export async function startExchangeSim(options: ExchangeSimOptions = {}): Promise<ExchangeSim> {
  const random = options.random ?? Math.random;
  const now = options.now ?? (() => new Date());
  const tz = options.tz ?? 'Europe/Berlin';
  const traders = options.traders ?? ['trader_1', 'trader_2', 'trader_3', 'trader_4', 'trader_5'];
  const prefix = options.idPrefix ?? `sim${Date.now().toString(36)}`;
  const wss = new WebSocketServer({ port: options.port ?? 0, host: options.host ?? '127.0.0.1', autoPong: false, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => { wss.once('listening', resolve); wss.once('error', reject); });
  const port = (wss.address() as AddressInfo).port;
  let pongs = true;
  let seq = 0;
  const timers: NodeJS.Timeout[] = [];
  const emitter = new EventEmitter();
  const gateMinutes = options.gateClosureMinutes ?? defaultGateClosureMinutes;

  /**
   * A product still open at `t`: an hour of today (or, once today's have all closed, of
   * tomorrow) with at least its last quarter hour before gate closure. `firstQuarter` > 0 when
   * the hour itself has closed and only its later quarter hours are still traded.
   */
  const openProduct = (t: Date) => {
    const isOpen = (start: number) => gateClosure(new Date(start), gateMinutes).getTime() > t.getTime();
    let day = localDay(t, tz);
    let slots = hoursOfDay(day, tz);
    let open = slots.filter((s) => isOpen(s.start.getTime() + 45 * 60_000));
    if (!open.length) {
      day = localDay(dayBounds(day, tz).end, tz);
      slots = hoursOfDay(day, tz);
      open = slots.filter((s) => isOpen(s.start.getTime() + 45 * 60_000));
    }
    const slot = open[Math.floor(random() * open.length)]!;
    let firstQuarter = 0;
    while (!isOpen(slot.start.getTime() + firstQuarter * 15 * 60_000)) firstQuarter += 1;
    return { day, slots, slot, firstQuarter };
  };

  const broadcast = (text: string) => {
    for (const client of wss.clients) if (client.readyState === WebSocket.OPEN) client.send(text);
    sim.framesSent += 1;
  };

  wss.on('connection', (ws) => {
    ws.on('ping', (data) => { if (pongs) ws.pong(data); });
    ws.on('error', () => {});
    if (options.replay) for (const d of sim.deals.slice(-options.replay)) ws.send(JSON.stringify({ deal_confirmation: d }));
    emitter.emit('connection');
  });

  const sim: ExchangeSim = Object.assign(emitter, {
    url: `ws://127.0.0.1:${port}`,
    port,
    deals: [] as SimDeal[],
    framesSent: 0,
    clientCount: () => [...wss.clients].filter((c) => c.readyState === WebSocket.OPEN).length,
    async waitForClients(n: number, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (sim.clientCount() < n) {
        if (Date.now() > deadline) throw new Error(`exchange sim: ${sim.clientCount()} clients after ${timeoutMs} ms, expected ${n}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    makeDeal(overrides: Partial<SimDeal> = {}): SimDeal {
      const t = now();
      const { day, slots, slot, firstQuarter } = openProduct(t);
      const repeated = slots.filter((s) => s.hour === slot.hour).length > 1;
      let period = `${pad(slot.hour)}-${pad((slot.hour + 1) % 24)}${repeated ? (slot.occurrence === 1 ? 'A' : 'B') : ''}`;
      if (firstQuarter > 0 || (!repeated && random() < (options.quarterHours ?? 0.2))) {
        const q = (firstQuarter + Math.floor(random() * (4 - firstQuarter))) * 15;
        const endH = q === 45 ? (slot.hour + 1) % 24 : slot.hour;
        period = `${pad(slot.hour)}:${pad(q)}-${pad(endH)}:${pad((q + 15) % 60)}${repeated ? (slot.occurrence === 1 ? 'A' : 'B') : ''}`;
      }
      // A daily shape: cheap night, solar dip at noon, evening peak; rarely negative.
      const h = slot.hour;
      const base = 70 + 55 * Math.exp(-((h - 19) ** 2) / 6) + 35 * Math.exp(-((h - 8) ** 2) / 4) - 30 * Math.exp(-((h - 13) ** 2) / 5);
      let price = base * (0.8 + 0.4 * random());
      if (random() < 0.02) price = -(1 + random() * 40);
      else price = Math.min(250, Math.max(30, price));
      seq += 1;
      return {
        id: `${prefix}-${seq}`,
        price: Math.round(price * 100) / 100,
        quantity: Math.max(1, Math.round(random() * 500)) / 10,
        direction: random() < 0.5 ? 'buy' : 'sell',
        delivery_day: day,
        delivery_hour: period,
        trader_id: traders[Math.floor(random() * traders.length)]!,
        execution_time: t.toISOString().replace(/\.\d{3}Z$/, 'Z'),
        ...overrides,
      };
    },
    sendDeal(overrides: Partial<SimDeal> = {}, key: 'deal_confirmation' | 'trade_confirmation' = 'deal_confirmation'): SimDeal {
      const deal = sim.makeDeal(overrides);
      sim.deals.push(deal);
      broadcast(JSON.stringify({ [key]: deal }));
      emitter.emit('deal', deal);
      return deal;
    },
    send(frame: unknown) {
      broadcast(typeof frame === 'string' ? frame : JSON.stringify(frame));
    },
    dropConnections() {
      for (const client of wss.clients) client.terminate();
    },
    answerPings(on: boolean) { pongs = on; },
    stop() {
      for (const t of timers) clearInterval(t);
    },
    async close() {
      sim.stop();
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  });

  const generated = () => {
    if (random() < (options.malformed ?? 0)) {
      broadcast(malformedFrames[Math.floor(random() * malformedFrames.length)]!(sim.makeDeal()));
      return;
    }
    const deal = sim.sendDeal({}, random() < (options.synonym ?? 0) ? 'trade_confirmation' : 'deal_confirmation');
    if (random() < (options.duplicates ?? 0)) {
      const t = setTimeout(() => broadcast(JSON.stringify({ deal_confirmation: deal })), 50 + random() * 500);
      t.unref?.();
    }
  };

  if (options.rate && options.rate > 0) {
    const startedAt = performance.now();
    let sent = 0;
    timers.push(setInterval(() => {
      const due = Math.floor(((performance.now() - startedAt) / 1000) * options.rate!);
      for (; sent < due; sent++) generated();
    }, 5));
  }
  if (options.burstEvery && options.burstEvery > 0) {
    timers.push(setInterval(() => { for (let i = 0; i < (options.burstSize ?? 200); i++) generated(); }, options.burstEvery));
  }
  if (options.dropEvery && options.dropEvery > 0) timers.push(setInterval(() => sim.dropConnections(), options.dropEvery));
  return sim;
}

async function main() {
  const { values } = parseOptions('exchange-sim', {
    options: {
      port: { type: 'string', default: '9001' }, rate: { type: 'string', default: '5' },
      traders: { type: 'string', default: '5' }, duplicates: { type: 'string', default: '0' },
      malformed: { type: 'string', default: '0' }, 'quarter-hours': { type: 'string', default: '0.2' },
      'burst-every': { type: 'string', default: '0' }, 'burst-size': { type: 'string', default: '200' },
      'drop-every': { type: 'string', default: '0' }, replay: { type: 'string', default: '0' },
      synonym: { type: 'string', default: '0' }, tz: { type: 'string', default: process.env.MARKET_TZ ?? 'Europe/Berlin' },
      'gate-closure-minutes': { type: 'string', default: String(defaultGateClosureMinutes) },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('npm run exchange-sim -- [--port 9001] [--rate 5] [--traders 5] [--duplicates 0.01] [--malformed 0.01] [--quarter-hours 0.2]\n' +
      '  [--burst-every ms --burst-size n] [--drop-every ms] [--replay n] [--synonym 0.1] [--tz Europe/Berlin] [--gate-closure-minutes 5]\n');
    return;
  }
  const num = (name: keyof typeof values) => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < 0) { process.stderr.write(`exchange-sim: --${String(name)} must be a non-negative number (got ${String(values[name])})\n`); process.exit(2); }
    return n;
  };
  const sim = await startExchangeSim({
    port: num('port'), host: '0.0.0.0', rate: num('rate'), tz: values.tz,
    traders: Array.from({ length: Math.max(1, num('traders')) }, (_, i) => `trader_${i + 1}`),
    duplicates: num('duplicates'), malformed: num('malformed'), quarterHours: num('quarter-hours'),
    burstEvery: num('burst-every'), burstSize: num('burst-size'), dropEvery: num('drop-every'), replay: num('replay'), synonym: num('synonym'),
    gateClosureMinutes: num('gate-closure-minutes'),
  });
  process.stdout.write(`${JSON.stringify({ msg: 'exchange simulator listening', url: `ws://localhost:${sim.port}`, rate: num('rate') })}\n`);
  sim.on('connection', () => process.stdout.write(`${JSON.stringify({ msg: 'client connected', clients: sim.clientCount() })}\n`));
  const stop = () => { void sim.close().then(() => process.exit(0)); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // Only the log of sent deals grows: keep the recent ones for --replay and VWAP.
  setInterval(() => { if (sim.deals.length > 100_000) sim.deals.splice(0, sim.deals.length - 50_000); }, 10_000).unref();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) void main();
