// The exchange simulator trading orders: the simulator as its own process (and in this process
// where a test holds the clock or moves the price itself), spoken to with the session's own
// transports over the real websocket and the real RabbitMQ on 127.0.0.1:5672.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startExchangeSim, type ExchangeSim, type ExchangeSimOptions } from '../scripts/exchange-sim';
import { referencePriceCents } from '../scripts/sim/order-book';
import { AmqpTransport } from '../server/exchange/amqp-transport';
import { checkExecutionReport, type ExecutionReport } from '../server/exchange/order-frames';
import type { Transport } from '../server/exchange/transport';
import { WsTransport } from '../server/exchange/ws-transport';
import { parseFeedMessage } from '../server/feed/message';
import { createLogger } from '../server/log';
import { dayBounds, gateClosure, localDay, parsePeriod } from '../server/time/market-time';
import { amqpUrl, deleteTopology, uniquePrefix } from './helpers/amqp';
import { startExchangeSimProcess, type ServerProcess } from './helpers/process';
import { until } from './helpers/wait';

const tz = 'Europe/Berlin';
const log = createLogger('silent');
const link = { heartbeatMs: 1000, backoffMinMs: 20, backoffMaxMs: 200, random: Math.random };
const today = localDay(new Date(), tz);
const tomorrow = localDay(dayBounds(today, tz).end, tz);
const yesterday = localDay(new Date(dayBounds(today, tz).start.getTime() - 1), tz);
const volatilityCents = 500; // the simulator's default ±5 EUR/MWh
const halfSpread = 25; // of the default 0.5 EUR/MWh spread

interface FillDeal { id: string; price: number; quantity: number; direction: string; trader_id: string; order_id: string; delivery_day: string; delivery_hour: string }
interface Received { seq: number; execution_report?: ExecutionReport; deal_confirmation?: FillDeal; raw: string }

/** A client of the simulator on one transport: what arrived, in order; sends frames. */
class Client {
  readonly frames: Received[] = [];
  private barriers = 0;

  constructor(readonly transport: Transport) {
    transport.on('message', (text, delivery) => {
      this.frames.push({ ...(JSON.parse(text) as Omit<Received, 'raw'>), raw: text });
      transport.settle([delivery]);
    });
    transport.start();
  }

  async ready(): Promise<this> {
    await until(() => this.transport.connected, 'connected to the simulator', 30_000);
    return this;
  }

  send(frame: unknown): Promise<void> {
    return this.transport.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  reports(id: string | null): ExecutionReport[] {
    return this.frames.flatMap((f) => (f.execution_report && f.execution_report.client_order_id === id ? [f.execution_report] : []));
  }

  deals(orderId: string): FillDeal[] {
    return this.frames.flatMap((f) => (f.deal_confirmation?.order_id === orderId ? [f.deal_confirmation] : []));
  }

  /** Waits for the order's `n`-th report with this status and returns all its reports so far. */
  async until(id: string, status: ExecutionReport['status'], n = 1, timeoutMs = 30_000): Promise<ExecutionReport[]> {
    await until(() => this.reports(id).filter((r) => r.status === status).length >= n, `report ${status} of ${id}`, timeoutMs);
    return this.reports(id);
  }

  /** Once this returns, everything the simulator sent before it answered the probe has arrived. */
  async barrier(): Promise<void> {
    const id = `barrier-${++this.barriers}-${Math.random().toString(36).slice(2, 6)}`;
    await this.send({ order_cancel: { client_order_id: id } });
    await this.until(id, 'cancel_rejected');
  }

  /** Sends one frame and returns the first frame that arrives after it (the simulator has no other traffic). */
  async answer(frame: unknown): Promise<Received> {
    const before = this.frames.length;
    await this.send(frame);
    await until(() => this.frames.length > before, 'an answer', 30_000);
    return this.frames[before]!;
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}

const clients: Client[] = [];
const processes: ServerProcess[] = [];
afterAll(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const p of processes.splice(0)) await p.stop();
});

async function wsClient(url: string): Promise<Client> {
  const c = new Client(new WsTransport(url, link, log));
  clients.push(c);
  return c.ready();
}

/** The simulator process without generated deal traffic; resolves with its websocket URL. */
async function simProcess(args: string[]): Promise<ServerProcess> {
  const p = await startExchangeSimProcess(['--port', '0', '--rate', '0', ...args]);
  processes.push(p);
  return p;
}

let orderNo = 0;
const run = Math.random().toString(36).slice(2, 7);
const nextId = (what: string) => `${what}-${run}-${++orderNo}`;

type OrderNewBody = Record<string, unknown> & { client_order_id: string };
const order = (overrides: Record<string, unknown> = {}): OrderNewBody => ({
  client_order_id: nextId('o'), trader_id: 'sim_trader_1', side: 'buy', type: 'limit', time_in_force: 'gtc',
  delivery_day: tomorrow, delivery_hour: '12-13', quantity: 10, price: 1, ...overrides,
});

/** The simulator's reference price of a product after `tick` moves, as it computes it for `seed`. */
const reference = (seed: number, deliveryHour: string, tick = 0, day = tomorrow) =>
  referencePriceCents(seed, { delivery_day: day, delivery_hour: deliveryHour, start: parsePeriod(day, deliveryHour, tz).start.toISOString() }, tick, volatilityCents);
const askOf = (seed: number, hour: string, tick = 0) => reference(seed, hour, tick) + halfSpread;
const bidOf = (seed: number, hour: string, tick = 0) => reference(seed, hour, tick) - halfSpread;
const tenths = (mw: number) => Math.round(mw * 10);

function expectValid(reports: ExecutionReport[]) {
  for (const r of reports) expect(checkExecutionReport(r)).toMatchObject({ ok: true });
}

describe('orders over the websocket (simulator process)', () => {
  const fullSeed = 11;
  const partSeed = 12;
  let full: Client; // the market always has the whole quantity
  let part: Client; // the market always has only part of it

  beforeAll(async () => {
    const [a, b] = await Promise.all([
      simProcess(['--seed', String(fullSeed), '--price-every', '0', '--partial-fill-rate', '0']),
      simProcess(['--seed', String(partSeed), '--price-every', '0', '--partial-fill-rate', '1']),
    ]);
    [full, part] = await Promise.all([wsClient(a.url), wsClient(b.url)]);
  });

  it('fills a crossing limit order at once at the market price and confirms the fill as a deal of the order and its trader', async () => {
    const ask = askOf(fullSeed, '12-13');
    const buy = order({ quantity: 12.3, price: (ask + 1000) / 100, trader_id: 'sim_trader_7' });
    await full.send({ order_new: buy });
    const reports = await full.until(buy.client_order_id, 'filled');
    expectValid(reports);
    expect(reports.map((r) => r.status)).toEqual(['new', 'filled']);
    const filled = reports[1]!;
    expect(filled).toMatchObject({ filled_quantity: 12.3, leaves_quantity: 0, fill: { price: ask / 100, quantity: 12.3 } });
    expect(filled.exchange_order_id).toBe(reports[0]!.exchange_order_id);
    // The fill's deal confirmation is a message of its own: it may come just after the report.
    await until(() => full.deals(buy.client_order_id).length > 0, `the deal confirmation of ${buy.client_order_id}`, 30_000);
    const [deal] = full.deals(buy.client_order_id);
    expect(deal).toMatchObject({ id: filled.fill!.deal_id, order_id: buy.client_order_id, trader_id: 'sim_trader_7', direction: 'buy', price: ask / 100, quantity: 12.3, delivery_day: tomorrow, delivery_hour: '12-13' });
    // The deal is a deal confirmation like any other: the feed reads it as a trade.
    const raw = full.frames.find((f) => f.deal_confirmation?.id === deal!.id)!.raw;
    expect(parseFeedMessage(raw, tz)).toMatchObject({ kind: 'deal', row: { id: deal!.id, trader_id: 'sim_trader_7', price: String(ask / 100), quantity: '12.3' } });

    const bid = bidOf(fullSeed, '08:15-08:30');
    const sell = order({ side: 'sell', delivery_hour: '08:15-08:30', quantity: 0.1, price: (bid - 500) / 100 });
    await full.send({ order_new: sell });
    expect((await full.until(sell.client_order_id, 'filled')).at(-1)).toMatchObject({ filled_quantity: 0.1, fill: { price: bid / 100, quantity: 0.1 } });
    // Every message numbered: each seq one more than the last.
    const seqs = full.frames.map((f) => f.seq);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
  });

  it('rests a limit order that does not cross, cancels it, and rejects cancelling it again', async () => {
    const o = order({ price: (bidOf(fullSeed, '12-13') - 2000) / 100, quantity: 4.5 });
    await full.send({ order_new: o });
    const [accepted] = await full.until(o.client_order_id, 'new');
    expect(accepted).toMatchObject({ filled_quantity: 0, leaves_quantity: 4.5 });
    await full.barrier();
    expect(full.reports(o.client_order_id)).toHaveLength(1);
    await full.send({ order_cancel: { client_order_id: o.client_order_id } });
    expect((await full.until(o.client_order_id, 'canceled')).at(-1)).toMatchObject({ exchange_order_id: accepted!.exchange_order_id, filled_quantity: 0, leaves_quantity: 0 });
    await full.send({ order_cancel: { client_order_id: o.client_order_id } });
    const [rejected] = (await full.until(o.client_order_id, 'cancel_rejected')).filter((r) => r.status === 'cancel_rejected');
    expect(rejected!.reason).toMatch(/order_cancel\.client_order_id: the order is already canceled/);
    expect(full.deals(o.client_order_id)).toEqual([]);
  });

  it('rejects the cancel of a filled order and of an unknown one', async () => {
    const o = order({ type: 'market', price: undefined, quantity: 7.5 });
    await full.send({ order_new: o });
    const reports = await full.until(o.client_order_id, 'filled');
    expect(reports.at(-1)).toMatchObject({ filled_quantity: 7.5, leaves_quantity: 0, fill: { price: askOf(fullSeed, '12-13') / 100, quantity: 7.5 } });
    await full.send({ order_cancel: { client_order_id: o.client_order_id } });
    const last = (await full.until(o.client_order_id, 'cancel_rejected')).at(-1)!;
    expect(last).toMatchObject({ filled_quantity: 7.5, leaves_quantity: 0, exchange_order_id: reports[0]!.exchange_order_id });
    expect(last.reason).toMatch(/already filled/);
    const unknown = nextId('unknown');
    await full.send({ order_cancel: { client_order_id: unknown } });
    expect((await full.until(unknown, 'cancel_rejected'))[0]).toMatchObject({ exchange_order_id: null, reason: expect.stringMatching(/no order .* at the exchange/) });
  });

  it('fills part of a crossing GTC order, rests the rest, and keeps what was filled when it is canceled', async () => {
    const ask = askOf(partSeed, '12-13');
    const o = order({ quantity: 20, price: (ask + 100) / 100 });
    await part.send({ order_new: o });
    const reports = await part.until(o.client_order_id, 'partially_filled');
    expectValid(reports);
    const partial = reports.at(-1)!;
    expect(partial.filled_quantity).toBeGreaterThan(0);
    expect(partial.filled_quantity).toBeLessThan(20);
    expect(tenths(partial.filled_quantity) + tenths(partial.leaves_quantity)).toBe(200);
    expect(partial.fill).toMatchObject({ price: ask / 100, quantity: partial.filled_quantity });
    await part.barrier();
    expect(part.reports(o.client_order_id).map((r) => r.status)).toEqual(['new', 'partially_filled']);
    await part.send({ order_cancel: { client_order_id: o.client_order_id } });
    expect((await part.until(o.client_order_id, 'canceled')).at(-1)).toMatchObject({ filled_quantity: partial.filled_quantity, leaves_quantity: 0 });
    expect(part.deals(o.client_order_id).map((d) => d.quantity)).toEqual([partial.filled_quantity]);
  });

  it('fills a market order in full at the book even when the best price has only part of it', async () => {
    const o = order({ type: 'market', side: 'sell', price: undefined, quantity: 9.9, time_in_force: 'ioc' });
    await part.send({ order_new: o });
    const reports = await part.until(o.client_order_id, 'filled');
    const fills = reports.flatMap((r) => (r.fill ? [r.fill] : []));
    const bid = bidOf(partSeed, '12-13');
    expect(fills.map((f) => f.price)).toEqual([bid / 100, (bid - 50) / 100]);
    expect(fills.reduce((s, f) => s + tenths(f.quantity), 0)).toBe(99);
    expect(reports.map((r) => r.status)).toEqual(['new', 'partially_filled', 'filled']);
  });

  it('expires an IOC order that does not cross and the unfilled rest of one that crosses', async () => {
    const miss = order({ time_in_force: 'ioc', price: (bidOf(fullSeed, '12-13') - 1000) / 100 });
    await full.send({ order_new: miss });
    const missed = await full.until(miss.client_order_id, 'expired');
    expect(missed.map((r) => r.status)).toEqual(['new', 'expired']);
    expect(missed[1]).toMatchObject({ filled_quantity: 0, leaves_quantity: 0, reason: expect.stringMatching(/^ioc: nothing to trade at the limit/) });

    const hit = order({ time_in_force: 'ioc', quantity: 5, price: (askOf(partSeed, '12-13') + 10) / 100 });
    await part.send({ order_new: hit });
    const hits = await part.until(hit.client_order_id, 'expired');
    expect(hits.map((r) => r.status)).toEqual(['new', 'partially_filled', 'expired']);
    const filled = hits[1]!.filled_quantity;
    expect(filled).toBeGreaterThan(0);
    expect(hits[2]).toMatchObject({ filled_quantity: filled, leaves_quantity: 0, reason: `ioc: the unfilled ${(50 - tenths(filled)) / 10} MW expired` });
  });

  it('fills a FOK order in full or not at all', async () => {
    const whole = order({ time_in_force: 'fok', side: 'sell', quantity: 3.3, price: (bidOf(fullSeed, '12-13') - 10) / 100 });
    await full.send({ order_new: whole });
    expect((await full.until(whole.client_order_id, 'filled')).map((r) => r.status)).toEqual(['new', 'filled']);

    const short = order({ time_in_force: 'fok', quantity: 3.3, price: (askOf(partSeed, '12-13') + 10) / 100 });
    await part.send({ order_new: short });
    const reports = await part.until(short.client_order_id, 'expired');
    expect(reports.map((r) => r.status)).toEqual(['new', 'expired']);
    expect(reports[1]).toMatchObject({ filled_quantity: 0, leaves_quantity: 0, reason: expect.stringMatching(/^fok: only .* of 3\.3 MW at the limit, nothing filled$/) });
    await part.barrier();
    expect(part.deals(short.client_order_id)).toEqual([]);
  });

  it('replaces the quantity and the price of a resting order, fills it when the new price crosses, and rejects replacing what cannot be', async () => {
    const o = order({ quantity: 10, price: 1 });
    await full.send({ order_new: o });
    await full.until(o.client_order_id, 'new');
    await full.send({ order_replace: { client_order_id: o.client_order_id, quantity: 20 } });
    expect((await full.until(o.client_order_id, 'replaced')).at(-1)).toMatchObject({ filled_quantity: 0, leaves_quantity: 20 });
    const ask = askOf(fullSeed, '12-13');
    await full.send({ order_replace: { client_order_id: o.client_order_id, price: (ask + 1) / 100 } });
    const reports = await full.until(o.client_order_id, 'filled');
    expect(reports.map((r) => r.status)).toEqual(['new', 'replaced', 'replaced', 'filled']);
    expect(reports.at(-1)).toMatchObject({ filled_quantity: 20, fill: { price: ask / 100, quantity: 20 } });

    await full.send({ order_replace: { client_order_id: o.client_order_id, price: 2 } });
    expect((await full.until(o.client_order_id, 'replace_rejected')).at(-1)!.reason).toMatch(/already filled/);
    const unknown = nextId('unknown');
    await full.send({ order_replace: { client_order_id: unknown, price: 2 } });
    expect((await full.until(unknown, 'replace_rejected'))[0]).toMatchObject({ exchange_order_id: null, reason: expect.stringMatching(/no order/) });
    const nothing = await full.answer({ order_replace: { client_order_id: o.client_order_id } });
    expect(nothing.execution_report).toMatchObject({ status: 'replace_rejected', reason: 'order_replace: must give quantity or price (or both)' });

    // Below what is filled already: refused, naming the quantity; the order is unchanged.
    const p = order({ quantity: 10, price: (askOf(partSeed, '12-13') + 1) / 100 });
    await part.send({ order_new: p });
    const filled = (await part.until(p.client_order_id, 'partially_filled')).at(-1)!.filled_quantity;
    await part.send({ order_replace: { client_order_id: p.client_order_id, quantity: filled } });
    const refused = (await part.until(p.client_order_id, 'replace_rejected')).at(-1)!;
    expect(refused).toMatchObject({ filled_quantity: filled, leaves_quantity: (100 - tenths(filled)) / 10 });
    expect(refused.reason).toMatch(/^order_replace\.quantity: must be more than the .* MW already filled/);
  });

  it('answers every bad frame with a rejection naming the field, and goes on trading', async () => {
    const good = order();
    const { client_order_id: _id, ...withoutId } = good;
    const cases: [unknown, RegExp][] = [
      [{ order_new: order({ side: 'hold' }) }, /^order_new\.side: must be "buy" or "sell"/],
      [{ order_new: order({ quantity: 0.05 }) }, /^order_new\.quantity: must be a positive multiple of 0\.1 MW \(got 0\.05\)/],
      [{ order_new: order({ quantity: -1 }) }, /^order_new\.quantity: must be a positive multiple/],
      [{ order_new: order({ quantity: '10' }) }, /^order_new\.quantity: must be a number/],
      [{ order_new: order({ price: undefined }) }, /^order_new\.price: is required for a limit order/],
      [{ order_new: order({ price: 10_000 }) }, /^order_new\.price: must be within ±9999 EUR\/MWh/],
      [{ order_new: order({ price: 20.123 }) }, /^order_new\.price: must have at most 2 decimal places/],
      [{ order_new: order({ type: 'market' }) }, /^order_new\.price: must not be given for a market order/],
      [{ order_new: order({ type: 'stop' }) }, /^order_new\.type: must be "limit" or "market"/],
      [{ order_new: order({ time_in_force: 'day' }) }, /^order_new\.time_in_force: must be "gtc", "ioc" or "fok"/],
      [{ order_new: order({ delivery_hour: '25-26' }) }, /^order_new\.delivery_hour: period "25-26" has an impossible time/],
      [{ order_new: order({ delivery_day: '2026-13-01' }) }, /^order_new\.delivery_day: must be a calendar date/],
      [{ order_new: order({ trader_id: '' }) }, /^order_new\.trader_id: must not be empty/],
      [{ order_new: order({ limit_price: 20 }) }, /^order_new: unknown field "limit_price"/],
      [{ order_new: withoutId }, /^order_new\.client_order_id: is required/],
      [{ order_new: 'buy 10 MW' }, /^order_new: /],
      [{ order_cancel: {} }, /^order_cancel\.client_order_id: is required/],
      [{ order_replace: { client_order_id: nextId('r'), price: 'high' } }, /^order_replace\.price: must be a number/],
      ['{"order_new": {"client_order_id": "x"', /^message: not valid JSON/],
      [{ order_amend: { client_order_id: 'x' } }, /^message: expected one of the keys "order_new", "order_cancel", "order_replace" or "resume"; got keys "order_amend"/],
    ];
    for (const [frame, reason] of cases) {
      const answer = await full.answer(frame);
      const kind = typeof frame === 'object' ? Object.keys(frame as object)[0] : undefined;
      expect(answer.execution_report, JSON.stringify(frame)).toMatchObject({
        status: kind === 'order_cancel' ? 'cancel_rejected' : kind === 'order_replace' ? 'replace_rejected' : 'rejected',
        exchange_order_id: null, filled_quantity: 0, leaves_quantity: 0, reason: expect.stringMatching(reason),
      });
      expect(checkExecutionReport(answer.execution_report)).toMatchObject({ ok: true });
    }
    // A readable client_order_id is echoed; none otherwise.
    expect((await full.answer({ order_new: order({ client_order_id: 'bad-side-1', side: 'x' }) })).execution_report!.client_order_id).toBe('bad-side-1');
    expect((await full.answer({ order_new: withoutId })).execution_report!.client_order_id).toBeNull();
    // A frame that failed validation leaves no order behind: the same id with good content trades.
    await full.send({ order_new: { ...good, price: (askOf(fullSeed, '12-13') + 5) / 100 } });
    expect((await full.until(good.client_order_id, 'filled')).map((r) => r.status)).toEqual(['new', 'filled']);
  });

  it('answers a repeated order_new with the order\'s current state and never takes a second order', async () => {
    const resting = order({ price: 2, quantity: 1.5 });
    const crossing = order({ price: (askOf(fullSeed, '12-13') + 5) / 100, quantity: 2.5 });
    for (const o of [resting, crossing]) await full.send({ order_new: o });
    await full.until(crossing.client_order_id, 'filled');
    const first = full.reports(resting.client_order_id)[0]!;
    // Sent again, even with other content: what the exchange knows of that id.
    await full.send({ order_new: { ...resting, quantity: 99, price: 9000 } });
    await full.send({ order_new: crossing });
    await full.barrier();
    expect(full.reports(resting.client_order_id).at(-1)).toMatchObject({ status: 'new', exchange_order_id: first.exchange_order_id, filled_quantity: 0, leaves_quantity: 1.5, reason: 'repeated order_new: the order\'s current state' });
    const again = full.reports(crossing.client_order_id).at(-1)!;
    expect(again).toMatchObject({ status: 'filled', filled_quantity: 2.5, leaves_quantity: 0 });
    expect(again.fill).toBeUndefined();
    expect(full.reports(crossing.client_order_id).map((r) => r.status)).toEqual(['new', 'filled', 'filled']);
    expect(full.deals(crossing.client_order_id)).toHaveLength(1);
    expect(full.deals(resting.client_order_id)).toHaveLength(0);
  });

  it('rejects an order for a product whose trading has closed, and keeps that answer for its repeat', async () => {
    const o = order({ delivery_day: yesterday });
    await full.send({ order_new: o });
    const [rejected] = await full.until(o.client_order_id, 'rejected');
    const closedAt = gateClosure(parsePeriod(yesterday, '12-13', tz).start, 5).toISOString();
    expect(rejected).toMatchObject({ filled_quantity: 0, leaves_quantity: 0, reason: `order_new.delivery_hour: gate closure: trading of ${yesterday} 12-13 closed at ${closedAt} (5 min before delivery)` });
    expect(rejected!.exchange_order_id).not.toBeNull();
    await full.send({ order_new: o });
    const repeat = (await full.until(o.client_order_id, 'rejected', 2)).at(-1)!;
    expect(repeat).toMatchObject({ exchange_order_id: rejected!.exchange_order_id, reason: expect.stringContaining('gate closure') });
  });
});

describe('order outcomes of the simulator (process)', () => {
  it('rejects the configured share of valid orders, and a repeat of a rejected order stays rejected', async () => {
    const c = await wsClient((await simProcess(['--seed', '5', '--price-every', '0', '--order-reject-rate', '0.5'])).url);
    const orders = Array.from({ length: 40 }, () => order({ price: 1 }));
    for (const o of orders) await c.send({ order_new: o });
    await c.barrier();
    const outcome = orders.map((o) => c.reports(o.client_order_id)[0]!);
    const rejected = outcome.filter((r) => r.status === 'rejected');
    expect(outcome.every((r) => r.status === 'rejected' || r.status === 'new')).toBe(true);
    expect(rejected.length).toBeGreaterThanOrEqual(10);
    expect(rejected.length).toBeLessThanOrEqual(30);
    expect(rejected.every((r) => r.reason === 'rejected by the exchange\'s pre-trade risk check' && r.exchange_order_id !== null)).toBe(true);
    // A resend must not draw again: the rejected stay rejected, the accepted stay accepted.
    for (const o of orders) await c.send({ order_new: o });
    await c.barrier();
    expect(orders.map((o) => c.reports(o.client_order_id).at(-1)!.status)).toEqual(outcome.map((r) => r.status));
  });

  it('refuses to start with a share outside 0..1 or a seed that is not an integer, naming the option', async () => {
    await expect(startExchangeSimProcess(['--port', '0', '--order-reject-rate', '1.5'])).rejects.toThrow(/exited with 2 .*\n.*--order-reject-rate must be a share between 0 and 1 \(got 1\.5\)/);
    await expect(startExchangeSimProcess(['--port', '0', '--partial-fill-rate=-0.1'])).rejects.toThrow(/--partial-fill-rate must be a non-negative number \(got -0\.1\)/);
    await expect(startExchangeSimProcess(['--port', '0', '--seed', 'abc'])).rejects.toThrow(/--seed must be a non-negative integer \(got abc\)/);
  }, 90_000);

  it('gives the same reports for the same orders with the same seed, whatever deal traffic runs beside them, and others with another seed', async () => {
    const common = ['--price-every', '0', '--partial-fill-rate', '0.5', '--order-reject-rate', '0.2', '--id-prefix', 'det'];
    const [a, b, c] = await Promise.all([
      simProcess(['--seed', '21', ...common, '--rate', '50']),
      simProcess(['--seed', '21', ...common]),
      simProcess(['--seed', '22', ...common]),
    ]);
    const hours = ['08-09', '12-13', '19-20', '12:15-12:30'];
    const input: unknown[] = [];
    for (let i = 0; i < 32; i++) {
      const hour = hours[i % hours.length]!;
      const side = i % 3 === 0 ? 'sell' : 'buy';
      const ref = reference(21, hour);
      const offset = [-800, -100, 0, 100, 800][i % 5]!; // some cross, some rest
      const price = (side === 'buy' ? ref + offset : ref - offset) / 100;
      const type = i % 7 === 6 ? 'market' : 'limit';
      input.push({ order_new: { client_order_id: `det-${i}`, trader_id: `det_${i % 3}`, side, type, time_in_force: ['gtc', 'ioc', 'fok', 'gtc'][i % 4], delivery_day: tomorrow, delivery_hour: hour, quantity: (10 + (i % 9) * 17) / 10, ...(type === 'limit' ? { price } : {}) } });
      if (i % 5 === 4) input.push({ order_cancel: { client_order_id: `det-${i - 2}` } });
      if (i % 6 === 5) input.push({ order_replace: { client_order_id: `det-${i - 1}`, quantity: 30 } });
    }
    const outcomes = async (url: string) => {
      const client = await wsClient(url);
      for (const frame of input) await client.send(frame);
      await client.barrier();
      // Without the clock and seq (which the deal traffic moves on): the reports and the fills' deals.
      return client.frames
        .filter((f) => f.execution_report ? !f.execution_report.client_order_id?.startsWith('barrier-') : f.deal_confirmation?.order_id !== undefined)
        .map((f) => f.execution_report ? { ...f.execution_report, transact_time: undefined } : { ...f.deal_confirmation, execution_time: undefined });
    };
    const [ra, rb, rc] = await Promise.all([outcomes(a.url), outcomes(b.url), outcomes(c.url)]);
    expect(ra.length).toBeGreaterThan(input.length);
    const statuses = new Set(ra.map((r) => (r as { status?: string }).status));
    for (const s of ['new', 'partially_filled', 'filled', 'expired', 'rejected', 'canceled', 'replaced']) expect(statuses, s).toContain(s);
    expect(rb).toEqual(ra);
    expect(rc).not.toEqual(ra);
  }, 90_000);

  it('fills a resting order when the moving price comes through its limit, at its limit', async () => {
    const seed = 41;
    const sim = await simProcess(['--seed', String(seed), '--price-every', '20', '--partial-fill-rate', '0']);
    const c = await wsClient(sim.url);
    // A limit the path reaches now and then: the lowest fifth of the asks over its whole period
    // (520 steps), so that it comes within one period however slowly the steps come.
    const asks = Array.from({ length: 520 }, (_, t) => askOf(seed, '19-20', t)).sort((x, y) => x - y);
    const limit = asks[104]!;
    for (let attempt = 1; ; attempt++) {
      const o = order({ delivery_hour: '19-20', price: limit / 100, quantity: 2 });
      await c.send({ order_new: o });
      await c.until(o.client_order_id, 'new');
      await c.barrier();
      if (c.reports(o.client_order_id).length > 1) { // the price was through the limit right then: it filled at once
        expect(attempt, 'attempts').toBeLessThan(10);
        continue;
      }
      const reports = await c.until(o.client_order_id, 'filled', 1, 120_000);
      expect(reports.map((r) => r.status)).toEqual(['new', 'filled']);
      expect(reports[1]).toMatchObject({ filled_quantity: 2, leaves_quantity: 0, fill: { price: limit / 100, quantity: 2 } });
      break;
    }
  }, 180_000);
});

describe('orders against the simulator in this process (clock and price in hand, real websocket)', () => {
  const sims: ExchangeSim[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    for (const s of sims.splice(0)) await s.close();
  });
  const sim = async (options: ExchangeSimOptions) => {
    const s = await startExchangeSim({ priceEveryMs: 0, partialFillRate: 0, ...options });
    sims.push(s);
    return s;
  };

  it('fills a resting order at its limit on the first price move that crosses it, not before', async () => {
    const seed = 42;
    const s = await sim({ seed });
    const c = await wsClient(s.url);
    const path = Array.from({ length: 60 }, (_, t) => askOf(seed, '07-08', t));
    // A buy limit below the ask now that a later move reaches.
    const target = path.findIndex((a, t) => t > 3 && a < path[0]! - 100);
    expect(target).toBeGreaterThan(3);
    const limit = path[target]!;
    const first = path.findIndex((a) => a <= limit);
    const o = order({ delivery_hour: '07-08', price: limit / 100, quantity: 3 });
    await c.send({ order_new: o });
    await c.until(o.client_order_id, 'new');
    for (let t = 1; t < first; t++) {
      s.book.tick();
      await c.barrier();
      expect(c.reports(o.client_order_id).map((r) => r.status), `after move ${t}`).toEqual(['new']);
    }
    s.book.tick();
    const reports = await c.until(o.client_order_id, 'filled');
    expect(reports.at(-1)).toMatchObject({ filled_quantity: 3, fill: { price: limit / 100, quantity: 3 } });
    expect(s.book.ticks).toBe(first);
  });

  it('expires open orders at gate closure, keeping what was filled, and rejects new ones for the closed product', async () => {
    const start = parsePeriod(tomorrow, '10-11', tz).start;
    const closes = gateClosure(start, 30).getTime();
    let clock = closes - 60_000;
    const s = await sim({ seed: 43, partialFillRate: 1, gateClosureMinutes: 30, now: () => new Date(clock) });
    const c = await wsClient(s.url);
    const resting = order({ delivery_hour: '10-11', price: 1 });
    const partly = order({ delivery_hour: '10-11', price: (askOf(43, '10-11') + 10) / 100 });
    for (const o of [resting, partly]) await c.send({ order_new: o });
    const filled = (await c.until(partly.client_order_id, 'partially_filled')).at(-1)!.filled_quantity;
    clock = closes;
    const expired = (await c.until(resting.client_order_id, 'expired')).at(-1)!;
    expect(expired).toMatchObject({ filled_quantity: 0, leaves_quantity: 0, reason: `gate closure: trading of ${tomorrow} 10-11 closed at ${new Date(closes).toISOString()} (30 min before delivery)` });
    expect((await c.until(partly.client_order_id, 'expired')).at(-1)).toMatchObject({ filled_quantity: filled, leaves_quantity: 0 });
    const late = order({ delivery_hour: '10-11' });
    await c.send({ order_new: late });
    expect((await c.until(late.client_order_id, 'rejected'))[0]!.reason).toMatch(/^order_new\.delivery_hour: gate closure/);
    const open = order({ delivery_hour: '11-12' });
    await c.send({ order_new: open });
    await c.until(open.client_order_id, 'new');
  });
});

describe('replay and restarts of the simulator (process)', () => {
  it('replays the execution reports and fills a client missed when it resumes after reconnecting', async () => {
    const p = await simProcess(['--seed', '61', '--price-every', '0', '--partial-fill-rate', '0']);
    const away = await wsClient(p.url);
    const trader = await wsClient(p.url);
    const o1 = order({ price: (askOf(61, '12-13') + 100) / 100 });
    await trader.send({ order_new: o1 });
    await away.until(o1.client_order_id, 'filled');
    const seen = away.frames.at(-1)!.seq;
    await away.close();
    // While it is away: more orders, fills, a cancel.
    const o2 = order({ price: 1 });
    const o3 = order({ side: 'sell', type: 'market', price: undefined, quantity: 6.6 });
    await trader.send({ order_new: o2 });
    await trader.send({ order_new: o3 });
    await trader.send({ order_cancel: { client_order_id: o2.client_order_id } });
    await trader.until(o3.client_order_id, 'filled');
    await trader.until(o2.client_order_id, 'canceled');
    const missed = trader.frames.filter((f) => f.seq > seen);
    expect(missed.length).toBeGreaterThanOrEqual(5);
    const back = await wsClient(p.url);
    await back.send({ resume: { after_seq: seen } });
    await until(() => back.frames.length >= missed.length, 'the replay', 30_000);
    expect(back.frames.slice(0, missed.length).map((f) => f.raw)).toEqual(missed.map((f) => f.raw));
  });

  it('knows every order after a restart with its journal, also after kill -9: a repeat gets the state, the book goes on, numbering continues', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pd-sim-orders-'));
    try {
      const journal = path.join(dir, 'journal.ndjson');
      const args = ['--journal', journal, '--seed', '71', '--price-every', '0', '--partial-fill-rate', '0'];
      const first = await simProcess(args);
      const c1 = await wsClient(first.url);
      const resting = order({ price: 1, quantity: 2.2 });
      const filled = order({ price: (askOf(71, '12-13') + 100) / 100, quantity: 3.3 });
      for (const o of [resting, filled]) await c1.send({ order_new: o });
      await c1.until(filled.client_order_id, 'filled');
      await c1.barrier();
      const lastSeq = c1.frames.at(-1)!.seq;
      const ids = [resting, filled].map((o) => c1.reports(o.client_order_id)[0]!.exchange_order_id);
      await first.stop();

      const second = await simProcess(args);
      const c2 = await wsClient(second.url);
      await c2.send({ order_new: resting });
      await c2.send({ order_new: filled });
      await c2.send({ order_cancel: { client_order_id: resting.client_order_id } });
      const fresh = order({ price: 1 });
      await c2.send({ order_new: fresh });
      await c2.until(fresh.client_order_id, 'new');
      expect(c2.reports(resting.client_order_id).map((r) => [r.status, r.exchange_order_id])).toEqual([['new', ids[0]], ['canceled', ids[0]]]);
      expect(c2.reports(filled.client_order_id)).toMatchObject([{ status: 'filled', exchange_order_id: ids[1], filled_quantity: 3.3, leaves_quantity: 0 }]);
      expect(c2.deals(filled.client_order_id)).toEqual([]);
      const freshId = c2.reports(fresh.client_order_id)[0]!.exchange_order_id;
      expect(ids).not.toContain(freshId);
      expect(c2.frames[0]!.seq).toBe(lastSeq + 1);

      // Killed outright: every order's state was on disk before its report went out.
      await second.kill();
      const third = await simProcess(args);
      const c3 = await wsClient(third.url);
      for (const o of [fresh, resting, filled]) await c3.send({ order_new: o });
      await c3.barrier();
      expect([fresh, resting, filled].map((o) => c3.reports(o.client_order_id).map((r) => [r.status, r.exchange_order_id]))).toEqual([[['new', freshId]], [['canceled', ids[0]]], [['filled', ids[1]]]]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('orders over RabbitMQ (simulator process)', () => {
  const prefix = uniquePrefix('sim-orders');
  const seed = 51;
  let c: Client;
  let p: ServerProcess;
  beforeAll(async () => {
    p = await simProcess(['--transport', 'amqp', '--amqp-url', amqpUrl, '--amqp-prefix', prefix, '--seed', String(seed), '--price-every', '0', '--partial-fill-rate', '0']);
    c = new Client(new AmqpTransport(amqpUrl, { ...link, prefix, prefetch: 200 }, log));
    clients.push(c);
    await c.ready();
  });
  afterAll(async () => {
    await c.close();
    await p.stop();
    await deleteTopology(prefix);
  });

  it('fills, rests, replaces, cancels and rejects orders sent over the broker, and answers a repeat with the state', async () => {
    const ask = askOf(seed, '12-13');
    const hit = order({ quantity: 4.4, price: (ask + 50) / 100, trader_id: 'amqp_trader' });
    const rest = order({ quantity: 1.1, price: 3 });
    await c.send({ order_new: hit });
    await c.send({ order_new: rest });
    const hits = await c.until(hit.client_order_id, 'filled');
    expectValid(hits);
    expect(hits.at(-1)).toMatchObject({ filled_quantity: 4.4, fill: { price: ask / 100, quantity: 4.4 } });
    expect(c.deals(hit.client_order_id)).toMatchObject([{ id: hits.at(-1)!.fill!.deal_id, order_id: hit.client_order_id, trader_id: 'amqp_trader', quantity: 4.4 }]);
    await c.until(rest.client_order_id, 'new');
    await c.send({ order_replace: { client_order_id: rest.client_order_id, quantity: 2.2 } });
    await c.until(rest.client_order_id, 'replaced');
    await c.send({ order_cancel: { client_order_id: rest.client_order_id } });
    expect((await c.until(rest.client_order_id, 'canceled')).at(-1)).toMatchObject({ filled_quantity: 0, leaves_quantity: 0 });
    await c.send({ order_cancel: { client_order_id: hit.client_order_id } });
    expect((await c.until(hit.client_order_id, 'cancel_rejected')).at(-1)!.reason).toMatch(/already filled/);
    await c.send({ order_new: hit });
    expect((await c.until(hit.client_order_id, 'filled', 2)).at(-1)).toMatchObject({ filled_quantity: 4.4, exchange_order_id: hits[0]!.exchange_order_id });
    const bad = order({ quantity: 0 });
    await c.send({ order_new: bad });
    expect((await c.until(bad.client_order_id, 'rejected'))[0]!.reason).toMatch(/^order_new\.quantity: must be a positive multiple of 0\.1 MW/);
    const seqs = c.frames.map((f) => f.seq);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
  });

  it('replays a message of an order held back by a gap when the client asks to resume over the broker', async () => {
    const gapPrefix = uniquePrefix('sim-orders-gap');
    const g = await simProcess(['--transport', 'amqp', '--amqp-url', amqpUrl, '--amqp-prefix', gapPrefix, '--seed', '52', '--price-every', '0', '--partial-fill-rate', '0', '--gap-every', '3']);
    const client = new Client(new AmqpTransport(amqpUrl, { ...link, prefix: gapPrefix, prefetch: 200 }, log));
    try {
      await client.ready();
      const o = order({ price: (askOf(52, '12-13') + 100) / 100 }); // new (1), filled (2), its deal (3: held back)
      await client.send({ order_new: o });
      await client.until(o.client_order_id, 'filled');
      const next = order({ price: 1 }); // new (4)
      await client.send({ order_new: next });
      await client.until(next.client_order_id, 'new');
      expect(client.frames.map((f) => f.seq)).toEqual([1, 2, 4]);
      await client.send({ resume: { after_seq: 2 } });
      await until(() => client.frames.some((f) => f.seq === 3), 'the held-back message', 30_000);
      expect(client.frames.find((f) => f.seq === 3)!.deal_confirmation).toMatchObject({ order_id: o.client_order_id, id: client.reports(o.client_order_id)[1]!.fill!.deal_id });
    } finally {
      await client.close();
      await g.stop();
      await deleteTopology(gapPrefix);
    }
  });
});
