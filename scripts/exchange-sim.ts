// Exchange simulator: pushes deal confirmations like the exchange does, for several traders and
// the products still open for trading (gate closure), with optional duplicates, malformed frames, bursts, recalls, gaps and dropped
// connections; and trades the orders a client sends (order_new, order_cancel, order_replace:
// scripts/sim/order-book.ts), answering with execution reports and deal confirmations of the fills. It speaks the session protocol version 2 (every message numbered with `seq`, kept
// in a journal, replayed on `{"resume": {"after_seq": N}}`) over a websocket or RabbitMQ;
// `protocol: 1` sends bare frames as a version 1 exchange. `npm run exchange-sim -- --port 9001
// --rate 20`; tests and benches start it in-process with startExchangeSim().
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { WebSocketServer, WebSocket } from 'ws';
import { amqpTopology, declareTopology, routingKeys } from '../server/exchange/amqp-transport';
import { orderKinds, type OrderKind } from '../server/exchange/order-frames';
import { dayBounds, defaultGateClosureMinutes, gateClosure, hoursOfDay, localDay, pad } from '../server/time/market-time';
import { parseOptions } from './cli';
import { basePriceEur, OrderBook } from './sim/order-book';
import { seededRandom } from './sim/random';

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
  /** Share of deals sent a second time a little later (the exchange re-sends; a new message). */
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
  /** Every this many ms, cut every connection (the gateway must reconnect). Websocket only. */
  dropEvery?: number;
  /** Version 1: on each new connection, re-send the last N deals (a blind replay without seq). */
  replay?: number;
  /** Use the key trade_confirmation for this share of deals. */
  synonym?: number;
  /** Share of generated deals followed by the recall of an earlier deal (a mistrade). */
  recallRate?: number;
  /** Every this many-th message is journaled but not sent live: a gap the client must ask for. */
  gapEvery?: number;
  /** 2 (default): numbered messages, journal, resume; 1: bare frames, no journal. */
  protocol?: 1 | 2;
  /** Keep the journal in this file too (appended), and continue it when it exists. */
  journalFile?: string;
  /** 'ws' (default) or 'amqp' (needs amqpUrl). */
  transport?: 'ws' | 'amqp';
  amqpUrl?: string;
  /** Names of the AMQP exchange and queues start with this (EXCHANGE_AMQP_PREFIX of the gateway). */
  amqpPrefix?: string;
  /** Deal ids start with this (default: a per-run prefix, so reruns do not collide). */
  idPrefix?: string;
  /** Makes the run deterministic: the generated traffic, the price paths and the order outcomes (unless `random` is given). */
  seed?: number;
  /** Share of valid new orders the exchange rejects (0..1). */
  orderRejectRate?: number;
  /** Share of crossing fills for which the market has only part of the quantity (0..1, default 0.3). */
  partialFillRate?: number;
  /** The reference prices move every this many ms (default 1000); 0: only when the book's tick() is called. */
  priceEveryMs?: number;
  /** Bid-ask spread of the market around the reference price, EUR/MWh (default 0.5). */
  spreadEur?: number;
  /** How far the reference prices swing either side of the day's shape, EUR/MWh (default 5). */
  volatilityEur?: number;
  random?: () => number;
  now?: () => Date;
}

export interface JournalEntry {
  seq: number;
  text: string;
}

export interface ExchangeSim extends EventEmitter {
  /** ws://… or, over AMQP, the broker URL. */
  url: string;
  port: number;
  /** Every deal sent so far, in order (duplicates once; a deal held back by a gap too; fills of orders too). */
  readonly deals: SimDeal[];
  /** The orders clients sent, and the market they trade against. */
  readonly book: OrderBook;
  /** Version 2: every message sent, in seq order (kept in memory, and in journalFile when set). */
  readonly journal: JournalEntry[];
  /** Deals recalled so far: id -> reason. */
  readonly recalls: Map<string, string>;
  /** Frames the clients sent (resume requests, orders), parsed. */
  readonly fromClients: unknown[];
  /** Frames sent so far (all kinds), per client. */
  framesSent: number;
  /** Resume requests answered. */
  resumes: number;
  clientCount(): number;
  waitForClients(n: number, timeoutMs?: number): Promise<void>;
  /** A new realistic deal (not sent). */
  makeDeal(overrides?: Partial<SimDeal>): SimDeal;
  /** Sends a deal confirmation to every client and returns it. */
  sendDeal(overrides?: Partial<SimDeal>, key?: 'deal_confirmation' | 'trade_confirmation'): SimDeal;
  /** One message as the generated traffic makes them (a deal, maybe repeated, maybe malformed, maybe followed by a recall). */
  generate(): void;
  /** Recalls a deal (any id, even one never sent). */
  sendRecall(id: string, reason?: string): void;
  /** Sends any frame (object -> JSON with the next seq in version 2, `cut` short to broken JSON; a string as is, unnumbered). */
  send(frame: unknown, options?: { cut?: boolean }): void;
  dropConnections(): void;
  /** false: stop answering pings while keeping the connection open (a dead link). */
  answerPings(on: boolean): void;
  /** Stops the generated traffic (rate, bursts, drops); the server keeps running. */
  stop(): void;
  close(): Promise<void>;
}

type Malformed = (d: SimDeal) => { frame: Record<string, unknown>; cut?: boolean };

const malformedFrames: Malformed[] = [
  (d) => ({ frame: { deal_confirmation: d }, cut: true }),
  (d) => ({ frame: { deal_confirmation: { ...d, quantity: -d.quantity } } }),
  (d) => ({ frame: { deal_confirmation: { ...d, direction: 'hold' } } }),
  (d) => { const { price: _p, ...rest } = d; return { frame: { deal_confirmation: rest } }; },
  (d) => ({ frame: { deal_confirmation: { ...d, delivery_hour: '25-26' } } }),
  (d) => ({ frame: { heartbeat: d.execution_time } }),
];

export async function startExchangeSim(options: ExchangeSimOptions = {}): Promise<ExchangeSim> {
  const random = options.random ?? (options.seed === undefined ? Math.random : seededRandom(options.seed));
  const now = options.now ?? (() => new Date());
  const tz = options.tz ?? 'Europe/Berlin';
  const traders = options.traders ?? ['trader_1', 'trader_2', 'trader_3', 'trader_4', 'trader_5'];
  const prefix = options.idPrefix ?? `sim${Date.now().toString(36)}`;
  const v2 = (options.protocol ?? 2) === 2;
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
  const timers: NodeJS.Timeout[] = [];
  let pongs = true;
  let dealNo = 0;
  let lastSeq = 0;

  // The journal: everything sent, in order; a restarted simulator continues the file.
  const journal: JournalEntry[] = [];
  let journalOut: fs.WriteStream | undefined;
  if (v2 && options.journalFile) {
    if (fs.existsSync(options.journalFile)) {
      for (const line of fs.readFileSync(options.journalFile, 'utf8').split('\n')) {
        if (!line) continue;
        const entry = JSON.parse(line) as JournalEntry;
        journal.push(entry);
        lastSeq = entry.seq;
      }
    }
    fs.mkdirSync(path.dirname(options.journalFile), { recursive: true });
    journalOut = fs.createWriteStream(options.journalFile, { flags: 'a' });
  }

  // The orders clients send, traded against a market around moving reference prices; with a
  // journal file, the book is kept beside it so that a restarted simulator knows every order.
  const book = new OrderBook({
    tz, gateClosureMinutes: gateMinutes, now, seed: options.seed, idPrefix: prefix,
    random: options.seed === undefined ? Math.random : seededRandom(options.seed ^ 0x5bd1e995),
    rejectRate: options.orderRejectRate ?? 0, partialFillRate: options.partialFillRate ?? 0.3,
    spreadCents: Math.round((options.spreadEur ?? 0.5) * 100), volatilityCents: Math.round((options.volatilityEur ?? 5) * 100),
    send: (frame) => message(frame),
    onFill: (deal) => { sim.deals.push(deal); emitter.emit('deal', deal); },
    file: v2 && options.journalFile ? `${options.journalFile}.orders` : undefined,
  });
  const bookTimers: NodeJS.Timeout[] = [];
  const priceEvery = options.priceEveryMs ?? 1000;
  if (priceEvery > 0) bookTimers.push(setInterval(() => book.tick(), priceEvery));
  bookTimers.push(setInterval(() => book.sweep(), Math.min(250, priceEvery || 250)));
  for (const t of bookTimers) t.unref?.();

  // The link: a websocket server, or RabbitMQ queues.
  let wss: WebSocketServer | undefined;
  let port = 0;
  let url: string;
  let amqpConnection: ChannelModel | undefined;
  let channel: Channel | undefined;
  const topology = amqpTopology(options.amqpPrefix ?? 'powerdesk.exchange');
  const publish = (text: string) => {
    channel!.publish(topology.exchange, routingKeys.fromExchange, Buffer.from(text, 'utf8'), { persistent: true, contentType: 'application/json' });
  };
  const broadcast = (text: string) => {
    if (channel) publish(text);
    else for (const client of wss!.clients) if (client.readyState === WebSocket.OPEN) client.send(text);
    sim.framesSent += 1;
  };
  const fromClient = (text: string, replayTo: (t: string) => void) => {
    let msg: { resume?: { after_seq?: unknown } };
    try { msg = JSON.parse(text) as typeof msg; } catch (error) { book.unreadable(`message: not valid JSON (${(error as Error).message})`); return; }
    sim.fromClients.push(msg);
    emitter.emit('client-message', msg);
    const keys = typeof msg === 'object' && msg !== null && !Array.isArray(msg) ? Object.keys(msg) : [];
    if (keys.length === 1 && (orderKinds as readonly string[]).includes(keys[0]!)) {
      try {
        book.handle(keys[0] as OrderKind, (msg as Record<string, unknown>)[keys[0]!]);
      } catch (error) { // a fault of the simulator itself: say so to the client and go on with the next frame
        book.unreadable(`exchange: internal error handling ${keys[0]}: ${(error as Error).message}`);
        emitter.emit('order-error', error);
      }
      return;
    }
    if (!(keys.length === 1 && keys[0] === 'resume')) {
      book.unreadable(`message: expected one of the keys ${orderKinds.map((k) => JSON.stringify(k)).join(', ')} or "resume"; got keys ${keys.slice(0, 5).map((k) => JSON.stringify(k)).join(', ') || 'none'}`);
      return;
    }
    const after = msg.resume?.after_seq;
    if (v2 && typeof after === 'number' && after >= 0) {
      sim.resumes += 1;
      // Everything after N, in order, then live: sent in one go, so live messages follow it.
      let i = journal.length;
      while (i > 0 && journal[i - 1]!.seq > after) i--;
      for (; i < journal.length; i++) replayTo(journal[i]!.text);
      emitter.emit('resume', after);
    }
  };

  if (options.transport === 'amqp') {
    if (!options.amqpUrl) throw new Error('exchange sim: transport amqp needs amqpUrl');
    amqpConnection = await amqp.connect(options.amqpUrl);
    channel = await amqpConnection.createChannel();
    await declareTopology(channel, topology);
    await channel.consume(topology.toExchange, (message) => {
      if (!message) return;
      fromClient(message.content.toString('utf8'), publish);
      channel?.ack(message);
    });
    url = options.amqpUrl;
  } else {
    wss = new WebSocketServer({ port: options.port ?? 0, host: options.host ?? '127.0.0.1', autoPong: false, perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => { wss!.once('listening', resolve); wss!.once('error', reject); });
    port = (wss.address() as AddressInfo).port;
    url = `ws://127.0.0.1:${port}`;
    wss.on('connection', (ws) => {
      ws.on('ping', (data) => { if (pongs) ws.pong(data); });
      ws.on('error', () => {});
      ws.on('message', (data) => fromClient(data.toString(), (t) => ws.send(t)));
      if (!v2 && options.replay) for (const d of sim.deals.slice(-options.replay)) ws.send(JSON.stringify({ deal_confirmation: d }));
      emitter.emit('connection');
    });
  }

  /** Numbers, journals and sends one message (version 2); held back when it falls on a gap. */
  const message = (frame: Record<string, unknown>, cut = false) => {
    if (!v2) {
      const text = JSON.stringify(frame);
      broadcast(cut ? text.slice(0, -7) : text);
      return;
    }
    lastSeq += 1;
    const full = JSON.stringify({ seq: lastSeq, ...frame });
    const text = cut ? full.slice(0, -7) : full;
    const entry = { seq: lastSeq, text };
    journal.push(entry);
    journalOut?.write(`${JSON.stringify(entry)}\n`);
    if (options.gapEvery && lastSeq % options.gapEvery === 0) return;
    broadcast(text);
  };

  const sim: ExchangeSim = Object.assign(emitter, {
    url,
    port,
    deals: [] as SimDeal[],
    book,
    journal,
    recalls: new Map<string, string>(),
    fromClients: [] as unknown[],
    framesSent: 0,
    resumes: 0,
    clientCount: () => (wss ? [...wss.clients].filter((c) => c.readyState === WebSocket.OPEN).length : 0),
    async waitForClients(n: number, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      const count = async () => (channel ? (await channel.checkQueue(topology.fromExchange)).consumerCount : sim.clientCount());
      while ((await count()) < n) {
        if (Date.now() > deadline) throw new Error(`exchange sim: ${await count()} clients after ${timeoutMs} ms, expected ${n}`);
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
      let price = basePriceEur(h) * (0.8 + 0.4 * random());
      if (random() < 0.02) price = -(1 + random() * 40);
      else price = Math.min(250, Math.max(30, price));
      dealNo += 1;
      return {
        id: `${prefix}-${dealNo}`,
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
      message({ [key]: deal });
      emitter.emit('deal', deal);
      return deal;
    },
    generate: () => generated(),
    sendRecall(id: string, reason = 'mistrade') {
      if (!sim.recalls.has(id)) sim.recalls.set(id, reason);
      message({ deal_recall: { id, reason } });
      emitter.emit('recall', id);
    },
    send(frame: unknown, opts: { cut?: boolean } = {}) {
      if (typeof frame === 'string') broadcast(frame);
      else message(frame as Record<string, unknown>, opts.cut);
    },
    dropConnections() {
      for (const client of wss?.clients ?? []) client.terminate();
    },
    answerPings(on: boolean) { pongs = on; },
    stop() {
      for (const t of timers) clearInterval(t);
    },
    async close() {
      sim.stop();
      for (const t of bookTimers) clearInterval(t);
      for (const client of wss?.clients ?? []) client.terminate();
      if (wss) await new Promise<void>((resolve) => wss!.close(() => resolve()));
      if (amqpConnection) await amqpConnection.close().catch(() => {});
      if (journalOut) await new Promise<void>((resolve) => journalOut!.end(() => resolve()));
    },
  });

  const generated = () => {
    if (random() < (options.malformed ?? 0)) {
      const bad = malformedFrames[Math.floor(random() * malformedFrames.length)]!(sim.makeDeal());
      message(bad.frame, bad.cut);
      return;
    }
    const deal = sim.sendDeal({}, random() < (options.synonym ?? 0) ? 'trade_confirmation' : 'deal_confirmation');
    if (random() < (options.duplicates ?? 0)) {
      const t = setTimeout(() => message({ deal_confirmation: deal }), 50 + random() * 500);
      t.unref?.();
    }
    if (random() < (options.recallRate ?? 0)) {
      // A recent deal not recalled yet (the deals of the last minute or so).
      const recent = sim.deals.slice(-500).filter((d) => !sim.recalls.has(d.id));
      const victim = recent[Math.floor(random() * recent.length)];
      if (victim) sim.sendRecall(victim.id, 'mistrade: price outside the exchange\'s reasonability range');
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
      'recall-rate': { type: 'string', default: '0' }, 'gap-every': { type: 'string', default: '0' },
      protocol: { type: 'string', default: '2' }, journal: { type: 'string' },
      transport: { type: 'string', default: 'ws' }, 'amqp-url': { type: 'string', default: process.env.EXCHANGE_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672' },
      'amqp-prefix': { type: 'string', default: process.env.EXCHANGE_AMQP_PREFIX ?? 'powerdesk.exchange' },
      seed: { type: 'string' }, 'id-prefix': { type: 'string' }, 'order-reject-rate': { type: 'string', default: '0' },
      'partial-fill-rate': { type: 'string', default: '0.3' }, 'price-every': { type: 'string', default: '1000' },
      spread: { type: 'string', default: '0.5' }, volatility: { type: 'string', default: '5' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('npm run exchange-sim -- [--port 9001] [--rate 5] [--traders 5] [--duplicates 0.01] [--malformed 0.01] [--quarter-hours 0.2]\n' +
      '  [--burst-every ms --burst-size n] [--drop-every ms] [--synonym 0.1] [--tz Europe/Berlin] [--gate-closure-minutes 5]\n' +
      '  [--recall-rate 0.01] [--gap-every n] [--journal FILE] [--protocol 2|1] [--replay n (protocol 1)]\n' +
      '  [--transport ws|amqp] [--amqp-url amqp://guest:guest@127.0.0.1:5672] [--amqp-prefix powerdesk.exchange]\n' +
      '  [--seed n] [--id-prefix text] [--order-reject-rate 0.05] [--partial-fill-rate 0.3] [--price-every ms] [--spread 0.5] [--volatility 5]\n');
    return;
  }
  const num = (name: keyof typeof values) => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < 0) { process.stderr.write(`exchange-sim: --${String(name)} must be a non-negative number (got ${String(values[name])})\n`); process.exit(2); }
    return n;
  };
  const share = (name: 'order-reject-rate' | 'partial-fill-rate') => {
    const n = num(name);
    if (n > 1) { process.stderr.write(`exchange-sim: --${name} must be a share between 0 and 1 (got ${values[name]})\n`); process.exit(2); }
    return n;
  };
  if (values.seed !== undefined && !/^\d{1,10}$/.test(values.seed)) { process.stderr.write(`exchange-sim: --seed must be a non-negative integer (got ${values.seed})\n`); process.exit(2); }
  if (values.protocol !== '1' && values.protocol !== '2') { process.stderr.write(`exchange-sim: --protocol must be 1 or 2 (got ${values.protocol})\n`); process.exit(2); }
  if (values.transport !== 'ws' && values.transport !== 'amqp') { process.stderr.write(`exchange-sim: --transport must be ws or amqp (got ${values.transport})\n`); process.exit(2); }
  const sim = await startExchangeSim({
    port: num('port'), host: '0.0.0.0', rate: num('rate'), tz: values.tz,
    traders: Array.from({ length: Math.max(1, num('traders')) }, (_, i) => `trader_${i + 1}`),
    duplicates: num('duplicates'), malformed: num('malformed'), quarterHours: num('quarter-hours'),
    burstEvery: num('burst-every'), burstSize: num('burst-size'), dropEvery: num('drop-every'), replay: num('replay'), synonym: num('synonym'),
    recallRate: num('recall-rate'), gapEvery: num('gap-every'), protocol: values.protocol === '1' ? 1 : 2, journalFile: values.journal,
    transport: values.transport, amqpUrl: values['amqp-url'], amqpPrefix: values['amqp-prefix'], gateClosureMinutes: num('gate-closure-minutes'),
    seed: values.seed === undefined ? undefined : Number(values.seed), idPrefix: values['id-prefix'],
    orderRejectRate: share('order-reject-rate'), partialFillRate: share('partial-fill-rate'), priceEveryMs: num('price-every'),
    spreadEur: num('spread'), volatilityEur: num('volatility'),
  }).catch((error: Error) => { process.stderr.write(`exchange-sim: cannot start: ${error.message}\n`); process.exit(1); });
  const where = values.transport === 'amqp' ? { transport: 'amqp', prefix: values['amqp-prefix'] } : { url: `ws://localhost:${sim.port}` };
  process.stdout.write(`${JSON.stringify({ msg: 'exchange simulator listening', ...where, rate: num('rate'), protocol: Number(values.protocol), journal: values.journal ?? null, last_seq: sim.journal.at(-1)?.seq ?? 0, seed: values.seed === undefined ? null : Number(values.seed), orders: sim.book.orders.size })}\n`);
  sim.on('connection', () => process.stdout.write(`${JSON.stringify({ msg: 'client connected', clients: sim.clientCount() })}\n`));
  sim.on('resume', (after: number) => process.stdout.write(`${JSON.stringify({ msg: 'resume', after_seq: after, last_seq: sim.journal.at(-1)?.seq ?? 0 })}\n`));
  const stop = () => { void sim.close().then(() => process.exit(0)); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // Only the logs grow: keep the recent deals (VWAP, --replay) and the recent journal in memory
  // (a resume from further back than that gets what the simulator still holds).
  setInterval(() => {
    if (sim.deals.length > 100_000) sim.deals.splice(0, sim.deals.length - 50_000);
    if (sim.journal.length > 500_000) sim.journal.splice(0, sim.journal.length - 250_000);
  }, 10_000).unref();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) void main();
