// The exchange simulator's order book: one book per product around a moving reference price.
// The market (everyone but us) quotes bid and ask half a spread either side of the reference;
// our orders trade against it, never against each other. Crossing orders fill at once at the
// quote (sometimes only partly: the market had less), GTC limit orders rest and fill at their
// limit when the price moves through it, IOC/FOK expire what they cannot fill, market orders
// fill in full at the book, open orders expire at gate closure. Quantities are kept in tenths of
// a MW and prices in eurocent (integers), and written as exact decimals. Every state change is
// an execution_report (and every fill also a deal_confirmation) handed to `send`, which numbers
// and journals it like any other message of the exchange.
import fs from 'node:fs';
import { checkOrderFrame, orderPriceLimitEur, type ExecutionStatus, type OrderKind, type OrderNew } from '../../server/exchange/order-frames';
import { gateClosure } from '../../server/time/market-time';
import type { SimDeal } from '../exchange-sim';
import { hashString, seededRandom } from './random';

export type OrderStatus = 'new' | 'partially_filled' | 'filled' | 'canceled' | 'expired' | 'rejected';

const finalStatuses: ReadonlySet<OrderStatus> = new Set(['filled', 'canceled', 'expired', 'rejected']);

/** One order the exchange took (also a rejected one: a repeated order_new gets its state). */
export interface SimOrder {
  client_order_id: string;
  exchange_order_id: string;
  trader_id: string;
  side: 'buy' | 'sell';
  type: 'limit' | 'market';
  time_in_force: 'gtc' | 'ioc' | 'fok';
  delivery_day: string;
  delivery_hour: string;
  /** Delivery start and end (ISO instants). */
  start: string;
  end: string;
  /** Tenths of a MW. */
  quantity: number;
  filled: number;
  /** Eurocent per MWh; null for a market order. */
  price: number | null;
  status: OrderStatus;
  reason?: string;
  /** Fills so far (numbers the deal ids). */
  fills: number;
}

/** A fill as the exchange confirms deals, with the order (its client_order_id) it belongs to. */
export interface FillDeal extends SimDeal {
  order_id: string;
}

export interface OrderBookOptions {
  tz: string;
  gateClosureMinutes: number;
  /** Draws for rejections and partial fills (seeded for a deterministic run). */
  random: () => number;
  now: () => Date;
  /** Fixes the reference price paths; by default a new one per run. */
  seed?: number;
  /** Share of valid new orders the exchange rejects. */
  rejectRate: number;
  /** Share of crossing fills for which the market has only part of the quantity. */
  partialFillRate: number;
  spreadCents: number;
  /** How far the reference price swings either side of the day's shape. */
  volatilityCents: number;
  /** Exchange order ids (and so deal ids of fills) start with this. */
  idPrefix: string;
  /** Sends one message (execution_report or deal_confirmation) to the client. */
  send: (frame: Record<string, unknown>) => void;
  /** Called for every fill, after its messages were sent. */
  onFill?: (deal: FillDeal) => void;
  /** Keep every order's state in this file (appended) and start from it when it exists. */
  file?: string;
}

/** The day's price shape in EUR/MWh by local hour: cheap night, morning ramp, solar dip at noon, evening peak. */
export function basePriceEur(hour: number): number {
  return 70 + 55 * Math.exp(-((hour - 19) ** 2) / 6) + 35 * Math.exp(-((hour - 8) ** 2) / 4) - 30 * Math.exp(-((hour - 13) ** 2) / 5);
}

const phaseCache = new Map<string, [number, number]>();
const cycleA = 40;
const cycleB = 13;

/**
 * The reference price of a product (eurocent/MWh) after `tick` price moves: the day's shape for
 * its local start hour plus two waves of its own (phases from the seed and the product), so it
 * swings within ±volatility and the same seed gives the same path.
 */
export function referencePriceCents(seed: number, product: { delivery_day: string; delivery_hour: string; start: string }, tick: number, volatilityCents: number): number {
  const key = `${seed}|${product.start}|${product.delivery_hour}`;
  let phase = phaseCache.get(key);
  if (!phase) {
    const draw = seededRandom(hashString(key));
    phase = [draw() * 2 * Math.PI, draw() * 2 * Math.PI];
    if (phaseCache.size > 100_000) phaseCache.clear();
    phaseCache.set(key, phase);
  }
  const [a, b] = phase;
  const wave = (Math.sin((2 * Math.PI * tick) / cycleA + a) + 0.5 * Math.sin((2 * Math.PI * tick) / cycleB + b)) / 1.5;
  const hour = Number(product.delivery_hour.slice(0, 2));
  return Math.round(basePriceEur(hour) * 100 + volatilityCents * wave);
}

const priceCap = orderPriceLimitEur * 100;
const mw = (tenths: number) => tenths / 10;
const eur = (cents: number) => cents / 100;

export class OrderBook {
  readonly orders = new Map<string, SimOrder>();
  /** Resting GTC limit orders, in the order they came to rest. */
  readonly resting = new Set<SimOrder>();
  /** Price moves so far. */
  ticks = 0;
  private orderNo = 0;
  private readonly seed: number;

  constructor(private readonly o: OrderBookOptions) {
    this.seed = o.seed ?? Math.floor(Math.random() * 2 ** 32);
    if (o.file && fs.existsSync(o.file)) {
      for (const line of fs.readFileSync(o.file, 'utf8').split('\n')) {
        let order: SimOrder;
        try { order = JSON.parse(line) as SimOrder; } catch { continue; } // empty, or cut short by a crash mid-write
        if (typeof order?.client_order_id !== 'string') continue;
        if (!this.orders.has(order.client_order_id)) this.orderNo += 1;
        this.orders.set(order.client_order_id, order);
      }
      for (const order of this.orders.values()) if (!finalStatuses.has(order.status) && order.type === 'limit' && order.time_in_force === 'gtc') this.resting.add(order);
    }
  }

  /** The market's quote for a product now: bid and ask in eurocent/MWh. */
  quote(product: { delivery_day: string; delivery_hour: string; start: string }): { reference: number; bid: number; ask: number } {
    const reference = referencePriceCents(this.seed, product, this.ticks, this.o.volatilityCents);
    const half = Math.round(this.o.spreadCents / 2);
    return { reference, bid: Math.max(-priceCap, reference - half), ask: Math.min(priceCap, reference + half) };
  }

  /** One message from the client of an order kind; never throws on its content. */
  handle(kind: OrderKind, body: unknown): void {
    if (kind === 'order_new') this.orderNew(body);
    else if (kind === 'order_cancel') this.cancel(body);
    else this.replace(body);
  }

  /** A frame from the client that is not an order message at all (broken JSON, an unknown kind). */
  unreadable(reason: string): void {
    this.o.send({ execution_report: { client_order_id: null, exchange_order_id: null, status: 'rejected', filled_quantity: 0, leaves_quantity: 0, reason, transact_time: this.o.now().toISOString() } });
  }

  /** The price moves one step; resting orders it crosses fill at their limit. */
  tick(): void {
    this.ticks += 1;
    this.sweep();
    for (const order of [...this.resting]) {
      const { bid, ask } = this.quote(order);
      const crosses = order.side === 'buy' ? ask <= order.price! : bid >= order.price!;
      if (!crosses) continue;
      this.fill(order, this.available(order.quantity - order.filled), order.price!);
      if (order.status === 'filled') this.resting.delete(order);
    }
  }

  /** Expires the open orders whose product's trading has closed. */
  sweep(): void {
    for (const order of [...this.resting]) this.expireIfClosed(order);
  }

  private closesAt(order: Pick<SimOrder, 'start'>): Date {
    return gateClosure(new Date(order.start), this.o.gateClosureMinutes);
  }

  private closedReason(order: SimOrder): string {
    return `gate closure: trading of ${order.delivery_day} ${order.delivery_hour} closed at ${this.closesAt(order).toISOString()} (${this.o.gateClosureMinutes} min before delivery)`;
  }

  private expireIfClosed(order: SimOrder): boolean {
    if (finalStatuses.has(order.status) || this.o.now().getTime() < this.closesAt(order).getTime()) return false;
    this.finish(order, 'expired', this.closedReason(order));
    return true;
  }

  private orderNew(body: unknown): void {
    const checked = checkOrderFrame('order_new', body, this.o.tz);
    const id = checked.ok ? (checked.value as OrderNew).client_order_id : checked.clientOrderId;
    const known = id === null ? undefined : this.orders.get(id);
    if (known) { // a repeat (a resend after a lost answer): its state, never a second order
      this.expireIfClosed(known);
      this.report(known, known.status, { reason: `repeated order_new: the order's current state${known.reason ? ` (${known.reason})` : ''}` });
      return;
    }
    if (!checked.ok) {
      this.o.send({ execution_report: { client_order_id: id, exchange_order_id: null, status: 'rejected', filled_quantity: 0, leaves_quantity: 0, reason: checked.reason, transact_time: this.o.now().toISOString() } });
      return;
    }
    if (checked.kind !== 'order_new') return;
    const v = checked.value;
    this.orderNo += 1;
    const order: SimOrder = {
      client_order_id: v.client_order_id, exchange_order_id: `${this.o.idPrefix}-o${this.orderNo}`, trader_id: v.trader_id,
      side: v.side, type: v.type, time_in_force: v.time_in_force, delivery_day: v.delivery_day, delivery_hour: v.delivery_hour,
      start: checked.delivery.start.toISOString(), end: checked.delivery.end.toISOString(),
      quantity: Math.round(v.quantity * 10), filled: 0, price: v.price === undefined ? null : Math.round(v.price * 100), status: 'new', fills: 0,
    };
    this.orders.set(order.client_order_id, order);
    if (this.o.now().getTime() >= this.closesAt(order).getTime()) {
      this.finish(order, 'rejected', `order_new.delivery_hour: ${this.closedReason(order)}`);
      return;
    }
    if (this.o.rejectRate > 0 && this.o.random() < this.o.rejectRate) {
      this.finish(order, 'rejected', 'rejected by the exchange\'s pre-trade risk check');
      return;
    }
    this.save(order);
    this.report(order, 'new');
    this.take(order);
  }

  /** An incoming (or just replaced) order takes what the market offers at once; the rest rests or expires. */
  private take(order: SimOrder): void {
    const { bid, ask } = this.quote(order);
    const buy = order.side === 'buy';
    const leaves = order.quantity - order.filled;
    if (order.type === 'market') { // sweeps the book: what the best level lacks, at the next one
      const first = this.available(leaves);
      this.fill(order, first, buy ? ask : bid);
      if (first < leaves) this.fill(order, leaves - first, buy ? Math.min(priceCap, ask + this.o.spreadCents) : Math.max(-priceCap, bid - this.o.spreadCents));
      return;
    }
    const crosses = buy ? order.price! >= ask : order.price! <= bid;
    const tif = order.time_in_force;
    if (!crosses) {
      if (tif === 'gtc') this.resting.add(order);
      else this.finish(order, 'expired', `${tif}: nothing to trade at the limit (market ${eur(bid)}/${eur(ask)} EUR/MWh)`);
      return;
    }
    const quantity = this.available(leaves);
    if (tif === 'fok' && quantity < leaves) {
      this.finish(order, 'expired', `fok: only ${mw(quantity)} of ${mw(leaves)} MW at the limit, nothing filled`);
      return;
    }
    this.fill(order, quantity, buy ? ask : bid);
    if (order.status === 'filled') { this.resting.delete(order); return; }
    if (tif === 'gtc') this.resting.add(order);
    else this.finish(order, 'expired', `ioc: the unfilled ${mw(order.quantity - order.filled)} MW expired`);
  }

  /** What the market has of `leaves` (tenths of a MW): all of it, or sometimes only part. */
  private available(leaves: number): number {
    if (leaves <= 1 || !(this.o.partialFillRate > 0) || this.o.random() >= this.o.partialFillRate) return leaves;
    return Math.max(1, Math.min(leaves - 1, Math.floor(leaves * (0.2 + 0.6 * this.o.random()))));
  }

  private fill(order: SimOrder, quantity: number, price: number): void {
    order.filled += quantity;
    order.fills += 1;
    order.status = order.filled === order.quantity ? 'filled' : 'partially_filled';
    const at = this.o.now().toISOString();
    const deal: FillDeal = {
      id: `${order.exchange_order_id}-f${order.fills}`, price: eur(price), quantity: mw(quantity), direction: order.side,
      delivery_day: order.delivery_day, delivery_hour: order.delivery_hour, trader_id: order.trader_id, execution_time: at, order_id: order.client_order_id,
    };
    this.save(order);
    this.report(order, order.status, { fill: { deal_id: deal.id, price: deal.price, quantity: deal.quantity } }, at);
    this.o.send({ deal_confirmation: deal });
    this.o.onFill?.(deal);
  }

  private cancel(body: unknown): void {
    const checked = checkOrderFrame('order_cancel', body, this.o.tz);
    if (!checked.ok) { this.refuse('cancel_rejected', checked.clientOrderId, checked.reason); return; }
    const id = (checked.value as { client_order_id: string }).client_order_id;
    const order = this.orders.get(id);
    if (!order) { this.refuse('cancel_rejected', id, `order_cancel.client_order_id: no order ${JSON.stringify(id)} at the exchange`); return; }
    this.expireIfClosed(order);
    if (finalStatuses.has(order.status)) { this.report(order, 'cancel_rejected', { reason: `order_cancel.client_order_id: the order is already ${order.status}` }); return; }
    this.finish(order, 'canceled');
  }

  private replace(body: unknown): void {
    const checked = checkOrderFrame('order_replace', body, this.o.tz);
    if (!checked.ok) { this.refuse('replace_rejected', checked.clientOrderId, checked.reason); return; }
    const r = checked.value as { client_order_id: string; quantity?: number; price?: number };
    const order = this.orders.get(r.client_order_id);
    if (!order) { this.refuse('replace_rejected', r.client_order_id, `order_replace.client_order_id: no order ${JSON.stringify(r.client_order_id)} at the exchange`); return; }
    this.expireIfClosed(order);
    if (finalStatuses.has(order.status)) { this.report(order, 'replace_rejected', { reason: `order_replace.client_order_id: the order is already ${order.status}` }); return; }
    const quantity = r.quantity === undefined ? order.quantity : Math.round(r.quantity * 10);
    if (quantity <= order.filled) { this.report(order, 'replace_rejected', { reason: `order_replace.quantity: must be more than the ${mw(order.filled)} MW already filled (got ${r.quantity})` }); return; }
    order.quantity = quantity;
    if (r.price !== undefined) order.price = Math.round(r.price * 100);
    this.resting.delete(order); // a replaced order loses its place and trades as a new one
    this.save(order);
    this.report(order, 'replaced');
    this.take(order);
  }

  /** Final state: canceled, expired or rejected; the rest leaves the book. */
  private finish(order: SimOrder, status: 'canceled' | 'expired' | 'rejected', reason?: string): void {
    order.status = status;
    if (reason) order.reason = reason;
    this.resting.delete(order);
    this.save(order);
    this.report(order, status, reason ? { reason } : {});
  }

  /** A cancel or replace the exchange cannot apply to any order of ours. */
  private refuse(status: 'cancel_rejected' | 'replace_rejected', clientOrderId: string | null, reason: string): void {
    const order = clientOrderId === null ? undefined : this.orders.get(clientOrderId);
    if (order) { this.report(order, status, { reason }); return; }
    this.o.send({ execution_report: { client_order_id: clientOrderId, exchange_order_id: null, status, filled_quantity: 0, leaves_quantity: 0, reason, transact_time: this.o.now().toISOString() } });
  }

  private report(order: SimOrder, status: ExecutionStatus, extra: { reason?: string; fill?: { deal_id: string; price: number; quantity: number } } = {}, at = this.o.now().toISOString()): void {
    const open = !finalStatuses.has(order.status);
    this.o.send({
      execution_report: {
        client_order_id: order.client_order_id, exchange_order_id: order.exchange_order_id, status,
        filled_quantity: mw(order.filled), leaves_quantity: open ? mw(order.quantity - order.filled) : 0,
        ...(extra.reason ? { reason: extra.reason } : {}), transact_time: at, ...(extra.fill ? { fill: extra.fill } : {}),
      },
    });
  }

  private save(order: SimOrder): void {
    if (this.o.file) fs.appendFileSync(this.o.file, `${JSON.stringify(order)}\n`);
  }
}
