// Orders: placement (order + hold + outbox in one transaction), cancel and replace requests,
// execution reports from the exchange (in the transaction of their seq), deposits and
// withdrawals, and the expiry of open orders at gate closure.
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock';
import type { Db, Queryable } from '../db';
import { sql } from '../db';
import type { InboundMessage } from '../exchange/session';
import { checkExecutionReport, type ExecutionReport } from '../exchange/order-frames';
import { numberToDecimal } from '../trades/decimal';
import type { Logger } from '../log';
import { book, ensureAccount, isUniqueViolation, lockAccount, lockAccounts } from '../accounts/ledger';
import { cents, eur, fillCents, fromScaled, micro, minBig, mwText, toScaled } from '../accounts/money';
import { deliveryHour, gateClosure, MarketTimeError, parsePeriod, toLocal } from '../time/market-time';
import { apiProduct, type TradeRow } from '../trades/normalize';
import { ingestTradesIn } from '../trades/store';
import { EventBatch, type TradingEvent } from './events';
import { GroupCommit, type Placed, type Placement, type Preclaim } from './placement';
import { InsufficientError, settleHolds, type TradingPolicy } from './holds';
import { canonical, isOpen, minutesOf, orderColumnList, periodOf, toApiOrder, type ApiOrder, type FillRow, type OrderRow, type OrderStatus } from './model';
import type { PlaceOrderInput } from './schema';

export { InsufficientError } from './holds';

/** The 409 of a client_order_id that is already the id of an order with other content. */
function clientOrderIdTaken(clientOrderId: string, orderId: string): OrderStateError {
  return new OrderStateError(`client_order_id: ${clientOrderId} is already the id of order ${orderId} with other content; use a new client_order_id`);
}

/** A request that cannot be done in the order's state (409) or names a wrong field (400). */
export class OrderStateError extends Error {}
export class OrderInputError extends Error {}
export class OrderNotFoundError extends Error {}

export interface TradingOptions extends TradingPolicy {
  db: Db;
  tz: string;
  clock: Clock;
  log: Logger;
  /** Trading of a product closes this many minutes before its delivery starts. */
  gateClosureMinutes: number;
  /** Also put every event in the outbox for the RabbitMQ topic exchange. */
  publishEvents?: boolean;
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type Listener = (events: TradingEvent[]) => void;

export class Trading {
  readonly policy: TradingPolicy;
  /** Called after a commit that wrote to the outbox (the dispatcher sends at once). */
  onOutbox?: () => void;
  private readonly listeners: Listener[] = [];
  /** Sends the order_new messages of a group right after its commit (set where the dispatcher is started). */
  preclaim?: Preclaim;
  /** Accounts known to exist (they are never deleted): placement skips creating them. */
  private readonly knownAccounts = new Set<string>();
  /** Concurrent placements, committed in groups. */
  readonly placements: GroupCommit;

  constructor(readonly options: TradingOptions) {
    this.policy = { marketHoldPrice: options.marketHoldPrice, shortLimitMw: options.shortLimitMw };
    const self = this;
    this.placements = new GroupCommit({
      db: options.db, tz: options.tz, policy: this.policy, publishEvents: options.publishEvents ?? false, log: options.log, knownAccounts: this.knownAccounts,
      get preclaim() { return self.preclaim; },
      describe: (o) => this.describe(o),
      orderNewFrame: (o) => this.orderNewFrame(o),
      placeOne: (p) => this.placeOne(p),
      withFills: (db, rows) => this.withFills(db, rows),
      conflict: clientOrderIdTaken,
      committed: (events, outbox) => this.committed(events, outbox),
    });
  }

  get db(): Db { return this.options.db; }
  get tz(): string { return this.options.tz; }

  /** In-process listeners of committed events (the database's NOTIFY reaches every process). */
  onEvents(listener: Listener): void {
    this.listeners.push(listener);
  }

  /**
   * After a commit: what is committed stands whatever a listener does. A listener that throws is
   * logged and the others still run (the live hub also learns of the change by NOTIFY; the
   * dispatcher polls the outbox).
   */
  private committed(events: TradingEvent[], outbox: boolean): void {
    for (const l of this.listeners) {
      try {
        l(events);
      } catch (error) {
        this.options.log.error('trading: a listener of committed events failed', { error, events: events.length });
      }
    }
    if (!outbox) return;
    try {
      this.onOutbox?.();
    } catch (error) {
      this.options.log.error('trading: waking the dispatcher after a commit failed', { error });
    }
  }

  /** The product's UTC interval from the local day and hour (or period); errors name the field. */
  product(input: { delivery_day: string; delivery_hour: number; delivery_period?: string }): { start: Date; end: Date } {
    const field = input.delivery_period === undefined ? 'delivery_hour' : 'delivery_period';
    let period: { start: Date; end: Date };
    try {
      period = input.delivery_period === undefined ? deliveryHour(input.delivery_day, input.delivery_hour, this.tz) : parsePeriod(input.delivery_day, input.delivery_period, this.tz);
    } catch (error) {
      if (error instanceof MarketTimeError) throw new OrderInputError(`${field}: ${error.message}`);
      throw error;
    }
    if (input.delivery_period !== undefined) {
      const { hour } = apiProduct(input.delivery_day, period.start, period.end, this.tz);
      if (hour !== input.delivery_hour) throw new OrderInputError(`delivery_hour: ${input.delivery_hour} does not match delivery_period ${JSON.stringify(input.delivery_period)}, which starts in hour ${hour}`);
    }
    this.assertGateOpen(period.start, field);
    return period;
  }

  /** Refuses a product whose gate has closed (400 naming the field). */
  assertGateOpen(start: Date, field: string): void {
    const closes = gateClosure(start, this.options.gateClosureMinutes);
    if (this.options.clock.now().getTime() >= closes.getTime()) {
      const local = toLocal(closes, this.tz);
      throw new OrderInputError(`${field}: trading of this product closed at ${local.day} ${String(local.hour).padStart(2, '0')}:${String(local.minute).padStart(2, '0')} (${this.tz}), ${this.options.gateClosureMinutes} minutes before its delivery starts`);
    }
  }

  /** Places an order: 201 a new one, 200 the existing one for a repeated client_order_id with the same content (committed with concurrent placements as a group). */
  async place(input: PlaceOrderInput & { trader_id: string }): Promise<Placed> {
    if (input.type === 'limit' && input.limit_price === undefined) throw new OrderInputError('limit_price: required for a limit order (eurocent/MWh)');
    if (input.type === 'market' && input.limit_price !== undefined) throw new OrderInputError('limit_price: not allowed for a market order (it fills at the market price); leave it out or use type "limit"');
    const period = this.product(input);
    const now = this.options.clock.now();
    const id = randomUUID();
    const clientOrderId = input.client_order_id ?? id;
    const limit = input.limit_price === undefined ? null : eur(BigInt(input.limit_price));
    const content = JSON.stringify({ side: input.side, type: input.type, time_in_force: input.time_in_force, delivery_day: input.delivery_day, delivery_start: period.start.toISOString(), delivery_end: period.end.toISOString(), quantity: String(input.quantity), limit_price: limit });
    const o: OrderRow = {
      id, client_order_id: clientOrderId, trader_id: input.trader_id, side: input.side, type: input.type, time_in_force: input.time_in_force,
      delivery_day: input.delivery_day, delivery_start: period.start, delivery_end: period.end, quantity: String(input.quantity), limit_price: limit,
      status: 'pending_new', filled_quantity: '0', filled_value: '0', held: '0.00', held_mw: '0', pending_quantity: null, pending_limit: null,
      resume_status: null, reject_reason: null, exchange_order_id: null, created_at: now, updated_at: now,
    };
    return this.placements.place({ o, content, clientGiven: input.client_order_id !== undefined });
  }

  /** One placement in a transaction of its own: hold, order, outbox message, notification, NOTIFY. */
  private async placeOne({ o, content, clientGiven }: Placement): Promise<Placed> {
    const now = o.created_at;
    if (clientGiven) {
      const existing = await this.existing(o.trader_id, o.client_order_id, content);
      if (existing) return { created: false, order: existing };
    }
    const events = new EventBatch();
    try {
      const written = await this.db.transaction(async (tx) => {
        const account = o.side === 'sell' ? await lockAccount(tx, o.trader_id, now) : undefined;
        if (!account && !this.knownAccounts.has(o.trader_id)) await ensureAccount(tx, o.trader_id, now);
        await settleHolds(tx, o, this.policy, now, events, account);
        // The order, its message to the exchange and its notification in one statement.
        const text = `${this.describe(o)} placed`;
        const [note] = await tx.query<{ id: number }>(sql`
          WITH placed AS (
            INSERT INTO orders (id, client_order_id, trader_id, side, type, time_in_force, delivery_day, delivery_start, delivery_end, quantity, limit_price, status, held, held_mw, content, created_at, updated_at)
            VALUES (${o.id}, ${o.client_order_id}, ${o.trader_id}, ${o.side}, ${o.type}, ${o.time_in_force}, ${o.delivery_day}, ${o.delivery_start}, ${o.delivery_end}, ${o.quantity}::numeric, ${o.limit_price}::numeric, ${o.status}, ${o.held}::numeric, ${o.held_mw}::numeric, ${content}::jsonb, ${now}, ${now})
          ), queued AS (
            INSERT INTO outbox (destination, order_id, frame, created_at) VALUES ('exchange', ${o.id}::uuid, ${JSON.stringify({ order_new: this.orderNewFrame(o) })}::jsonb, ${now})
          )
          INSERT INTO notifications (trader_id, at, kind, text, order_id) VALUES (${o.trader_id}, ${now}, 'placed', ${text}, ${o.id}::uuid) RETURNING id`);
        events.order(toApiOrder(o, [], this.tz));
        events.notified({ id: Number(note!.id), trader_id: o.trader_id, at: now.toISOString(), kind: 'placed', text, order_id: o.id, read: false });
        return events.write(tx, this.options.publishEvents ?? false, now);
      });
      this.knownAccounts.add(o.trader_id);
      this.committed(written, true);
    } catch (error) {
      if (isUniqueViolation(error)) {
        const existing = await this.existing(o.trader_id, o.client_order_id, content);
        if (existing) return { created: false, order: existing };
      }
      throw error;
    }
    return { created: true, order: toApiOrder(o, [], this.tz) };
  }

  private async existing(traderId: string, clientOrderId: string, content: string): Promise<ApiOrder | undefined> {
    const [row] = await this.db.query<OrderRow & { content: unknown }>(sql`
      SELECT ${orderColumnList}, content FROM orders WHERE trader_id = ${traderId} AND client_order_id = ${clientOrderId}`);
    if (!row) return undefined;
    if (canonical(row.content) !== canonical(JSON.parse(content))) throw clientOrderIdTaken(clientOrderId, row.id);
    return (await this.withFills(this.db, [row]))[0];
  }

  /** "Buy 5 MW 2026-12-02 08-09 at 50.00 EUR/MWh" */
  describe(o: OrderRow): string {
    const price = o.limit_price === null ? 'market' : `at ${o.limit_price} EUR/MWh`;
    return `${o.side === 'buy' ? 'Buy' : 'Sell'} ${Number(o.quantity)} MW ${o.delivery_day} ${periodOf(o, this.tz)} ${price}`;
  }

  orderNewFrame(o: OrderRow): Record<string, unknown> {
    return {
      client_order_id: o.id, trader_id: o.trader_id, side: o.side, type: o.type, time_in_force: o.time_in_force,
      delivery_day: o.delivery_day, delivery_hour: periodOf(o, this.tz), quantity: Number(o.quantity),
      ...(o.limit_price === null ? {} : { price: Number(o.limit_price) }),
    };
  }

  private async enqueue(tx: Queryable, o: OrderRow, frame: object, now: Date): Promise<void> {
    await tx.query(sql`INSERT INTO outbox (destination, order_id, frame, created_at) VALUES ('exchange', ${o.id}::uuid, ${JSON.stringify(frame)}::jsonb, ${now})`);
  }

  async get(db: Queryable, id: string): Promise<ApiOrder | undefined> {
    if (!uuidPattern.test(id)) return undefined;
    const rows = await db.query<OrderRow>(sql`SELECT ${orderColumnList} FROM orders WHERE id = ${id}::uuid`);
    return rows.length ? (await this.withFills(db, rows))[0] : undefined;
  }

  async withFills(db: Queryable, rows: OrderRow[]): Promise<ApiOrder[]> {
    const fills = rows.length ? await db.query<FillRow>(sql`SELECT deal_id, order_id, price, quantity, at FROM order_fills WHERE order_id = ANY(${rows.map((r) => r.id)}::uuid[]) ORDER BY at, deal_id`) : [];
    const by = new Map<string, FillRow[]>();
    for (const f of fills) by.set(f.order_id, [...(by.get(f.order_id) ?? []), f]);
    return rows.map((r) => toApiOrder(r, by.get(r.id) ?? [], this.tz));
  }

  /** The API's orders; fills read (in one statement) only for those that have any. */
  private async apisOf(db: Queryable, rows: OrderRow[]): Promise<ApiOrder[]> {
    const filled = rows.filter((o) => micro(o.filled_quantity) > 0n);
    const withFills = new Map((filled.length ? await this.withFills(db, filled) : []).map((o) => [o.id, o]));
    return rows.map((o) => withFills.get(o.id) ?? toApiOrder(o, [], this.tz));
  }

  /** Asks the exchange to cancel: 202 pending_cancel. */
  async cancel(id: string, allowed: (o: OrderRow) => void): Promise<ApiOrder> {
    return this.change(id, allowed, async (tx, o, now) => {
      if (!isOpen(o.status)) throw new OrderStateError(`status: order ${o.id} is already ${o.status}; only open orders can be canceled`);
      if (o.status === 'pending_cancel') return false;
      o.resume_status = o.status;
      o.status = 'pending_cancel';
      await this.enqueue(tx, o, { order_cancel: { client_order_id: o.id } }, now);
      return true;
    });
  }

  /** Asks the exchange to replace quantity and/or limit price: 202 pending_replace, holding the larger of old and new meanwhile. */
  async replace(id: string, changes: { quantity?: number; limit_price?: number }, allowed: (o: OrderRow) => void): Promise<ApiOrder> {
    return this.change(id, allowed, async (tx, o, now, events) => {
      if (!isOpen(o.status)) throw new OrderStateError(`status: order ${o.id} is already ${o.status}; only open orders can be modified`);
      if (o.status === 'pending_cancel' || o.status === 'pending_replace') throw new OrderStateError(`status: order ${o.id} is ${o.status}; wait for the exchange's answer before modifying it`);
      if (changes.limit_price !== undefined && o.type === 'market') throw new OrderInputError('limit_price: a market order has no limit price');
      if (changes.quantity !== undefined && micro(String(changes.quantity)) <= micro(o.filled_quantity)) {
        throw new OrderInputError(`quantity: must be more than the ${Number(o.filled_quantity)} MW already filled (the quantity is the order's total)`);
      }
      this.assertGateOpen(o.delivery_start, 'delivery_hour');
      const account = await lockAccount(tx, o.trader_id, now);
      o.pending_quantity = changes.quantity === undefined ? null : String(changes.quantity);
      o.pending_limit = changes.limit_price === undefined ? null : eur(BigInt(changes.limit_price));
      o.resume_status = o.status;
      o.status = 'pending_replace';
      await settleHolds(tx, o, this.policy, now, events, account);
      await this.enqueue(tx, o, {
        order_replace: {
          client_order_id: o.id,
          ...(o.pending_quantity === null ? {} : { quantity: Number(o.pending_quantity) }),
          ...(o.pending_limit === null ? {} : { price: Number(o.pending_limit) }),
        },
      }, now);
      return true;
    });
  }

  private async change(id: string, allowed: (o: OrderRow) => void, fn: (tx: Queryable, o: OrderRow, now: Date, events: EventBatch) => Promise<boolean>): Promise<ApiOrder> {
    if (!uuidPattern.test(id)) throw new OrderNotFoundError(`id: no order ${id}`);
    const events = new EventBatch();
    const now = this.options.clock.now();
    let changed = false;
    const { api, written } = await this.db.transaction(async (tx) => {
      const [o] = await tx.query<OrderRow>(sql`SELECT ${orderColumnList} FROM orders WHERE id = ${id}::uuid FOR UPDATE`);
      if (!o) throw new OrderNotFoundError(`id: no order ${id}`);
      allowed(o);
      changed = await fn(tx, o, now, events);
      if (changed) {
        o.updated_at = now;
        await saveOrders(tx, [o]);
      }
      const [api] = await this.apisOf(tx, [o]);
      if (changed) events.order(api!);
      return { api, written: await events.write(tx, this.options.publishEvents ?? false, now) };
    });
    this.committed(written, changed);
    return api!;
  }

  /** Deposit (positive cents) or withdrawal (negative, at most the available cash). */
  async cash(traderId: string, amountCents: bigint, memo: string | null): Promise<TradingEvent[]> {
    const now = this.options.clock.now();
    const events = new EventBatch();
    const written = await this.db.transaction(async (tx) => {
      await ensureAccount(tx, traderId, now);
      const kind = amountCents >= 0n ? 'deposit' : 'withdrawal';
      const done = await book(tx, { trader_id: traderId, kind, available: amountCents, at: now, memo }, amountCents < 0n ? -amountCents : undefined);
      if (!done) {
        const [acc] = await tx.query<{ available: string }>(sql`SELECT available FROM accounts WHERE trader_id = ${traderId}`);
        throw new InsufficientError(`amount: a withdrawal of ${eur(-amountCents)} EUR needs that much available cash; ${acc?.available ?? '0.00'} EUR is available`);
      }
      events.balance(done);
      events.notify(traderId, kind, `${kind === 'deposit' ? 'Deposit' : 'Withdrawal'} of ${eur(amountCents < 0n ? -amountCents : amountCents)} EUR${memo ? `: ${memo}` : ''}`, null, now);
      return events.write(tx, this.options.publishEvents ?? false, now);
    });
    this.committed(written, false);
    return written;
  }

  /**
   * The session's handler of `execution_report`, in the transaction that commits their seq. The
   * batch's orders are locked in one statement (in id order) and written back in one; the
   * accounts whose cash may move are locked in trader_id order, as placements lock them.
   */
  async handleReports(tx: Queryable, messages: InboundMessage[]): Promise<() => void> {
    const events = new EventBatch();
    const trades: TradeRow[] = [];
    const reports: { r: ExecutionReport; m: InboundMessage }[] = [];
    for (const m of messages) {
      const checked = checkExecutionReport(m.body);
      if (!checked.ok) this.options.log.warn('unreadable execution report: ignored', { seq: m.seq, reason: checked.reason, raw: m.raw.slice(0, 500) });
      else reports.push({ r: checked.value, m });
    }
    const ids = [...new Set(reports.flatMap(({ r }) => (r.client_order_id !== null && uuidPattern.test(r.client_order_id) ? [r.client_order_id.toLowerCase()] : [])))];
    const orders = new Map((ids.length ? await tx.query<OrderRow>(sql`SELECT ${orderColumnList} FROM orders WHERE id = ANY(${ids}::uuid[]) ORDER BY id FOR UPDATE`) : []).map((o) => [o.id, o]));
    // A plain acknowledgement moves no cash; anything else may release holds or book a fill.
    const moving = reports.filter(({ r }) => r.fill || (r.status !== 'new' && r.status !== 'partially_filled')).flatMap(({ r }) => orders.get(r.client_order_id?.toLowerCase() ?? '')?.trader_id ?? []);
    if (moving.length) await lockAccounts(tx, [...new Set(moving)]);
    const changed = new Map<string, OrderRow>();
    for (const { r, m } of reports) {
      const o = r.client_order_id === null ? undefined : orders.get(r.client_order_id.toLowerCase());
      if (!(await this.applyReport(tx, r, m, o, events, trades))) continue;
      changed.delete(o!.id); // the latest change last: its event goes after the others
      changed.set(o!.id, o!);
    }
    await saveOrders(tx, [...changed.values()]);
    for (const api of await this.apisOf(tx, [...changed.values()])) events.order(api);
    if (trades.length) await ingestTradesIn(tx, trades, 'feed', this.tz, messages[0]!.receivedAt);
    const written = events.empty ? [] : await events.write(tx, this.options.publishEvents ?? false, messages[0]?.receivedAt ?? this.options.clock.now());
    return () => this.committed(written, false);
  }

  /** Applies a report to its order (locked, in memory; the caller writes it): false when it is not ours. */
  private async applyReport(tx: Queryable, r: ExecutionReport, m: InboundMessage, o: OrderRow | undefined, events: EventBatch, trades: TradeRow[]): Promise<boolean> {
    const log = this.options.log;
    if (r.client_order_id === null || !uuidPattern.test(r.client_order_id)) {
      log.warn('execution report for an order id that is not ours: ignored', { seq: m.seq, client_order_id: r.client_order_id });
      return false;
    }
    if (!o) {
      log.warn('execution report for an unknown order: ignored', { seq: m.seq, client_order_id: r.client_order_id });
      return false;
    }
    const at = new Date(r.transact_time);
    const now = m.receivedAt;
    const wasOpen = isOpen(o.status);
    if (r.exchange_order_id) o.exchange_order_id = r.exchange_order_id;
    let fill: { deal_id: string; price: string; quantity: string } | undefined;
    const reported = r.fill && { deal_id: r.fill.deal_id, price: eur(cents(numberToDecimal(r.fill.price)!)), quantity: numberToDecimal(r.fill.quantity)! };
    if (reported) {
      const [inserted] = await tx.query<{ deal_id: string }>(sql`
        INSERT INTO order_fills (deal_id, order_id, price, quantity, at, seq) VALUES (${reported.deal_id}, ${o.id}::uuid, ${reported.price}::numeric, ${reported.quantity}::numeric, ${at}, ${m.seq})
        ON CONFLICT (deal_id) DO NOTHING RETURNING deal_id`);
      if (inserted) {
        fill = reported;
        o.filled_quantity = mwText(micro(o.filled_quantity) + micro(fill.quantity));
        o.filled_value = fromScaled(toScaled(o.filled_value, 8) + cents(fill.price) * micro(fill.quantity), 8);
        trades.push({
          id: fill.deal_id, trader_id: o.trader_id, direction: o.side, price: fill.price, quantity: fill.quantity,
          delivery_day: o.delivery_day, delivery_start: o.delivery_start, delivery_end: o.delivery_end, execution_time: at,
        });
      }
    }
    const derived = (): OrderStatus => (micro(o.filled_quantity) > 0n ? 'partially_filled' : 'new');
    const before = o.status;
    if (wasOpen) {
      switch (r.status) {
        case 'new':
        case 'partially_filled':
          if (o.status === 'pending_new' || o.status === 'new' || o.status === 'partially_filled') o.status = derived();
          else o.resume_status = derived();
          break;
        case 'filled': o.status = 'filled'; break;
        case 'canceled': o.status = 'canceled'; break;
        case 'expired': o.status = 'expired'; break;
        case 'rejected':
          o.status = 'rejected';
          o.reject_reason = r.reason ?? 'rejected by the exchange';
          break;
        case 'replaced':
          if (o.pending_quantity !== null) o.quantity = o.pending_quantity;
          if (o.pending_limit !== null) o.limit_price = o.pending_limit;
          o.pending_quantity = o.pending_limit = null;
          if (o.status === 'pending_replace') { o.status = derived(); o.resume_status = null; } else if (o.status === 'pending_cancel') o.resume_status = derived();
          break;
        case 'cancel_rejected':
          if (o.status === 'pending_cancel') {
            o.status = o.resume_status === 'pending_replace' ? 'pending_replace' : derived();
            o.resume_status = o.status === 'pending_replace' ? derived() : null;
          }
          break;
        case 'replace_rejected':
          o.pending_quantity = o.pending_limit = null;
          if (o.status === 'pending_replace') { o.status = derived(); o.resume_status = null; } else if (o.status === 'pending_cancel' && o.resume_status === 'pending_replace') o.resume_status = derived();
          break;
      }
      if (isOpen(o.status) && micro(o.filled_quantity) >= micro(o.quantity) && o.status !== 'pending_replace') o.status = 'filled';
    } else if (!fill) {
      log.info('execution report for an order that is already final', { seq: m.seq, order_id: o.id, order_status: o.status, report_status: r.status });
    }
    await settleHolds(tx, o, this.policy, now, events); // only releases: a report never makes an order hold more
    if (fill) await this.bookFill(tx, o, fill, now, events);
    o.updated_at = now;
    const text = this.describe(o);
    if (fill) events.notify(o.trader_id, o.status === 'filled' ? 'filled' : 'partially_filled', `${text}: ${Number(fill.quantity)} MW filled at ${fill.price} EUR/MWh (${Number(o.filled_quantity)} of ${Number(o.quantity)} MW)`, o.id, now);
    else if (before !== o.status || r.status.endsWith('_rejected') || r.status === 'replaced') {
      const said: Partial<Record<string, string>> = {
        canceled: 'canceled', expired: 'expired', rejected: `rejected: ${o.reject_reason}`, replaced: `modified: now ${Number(o.quantity)} MW${o.limit_price === null ? '' : ` at ${o.limit_price} EUR/MWh`}`,
        cancel_rejected: `could not be canceled${r.reason ? `: ${r.reason}` : ''}`, replace_rejected: `could not be modified${r.reason ? `: ${r.reason}` : ''}`,
      };
      const what = said[r.status];
      if (what) events.notify(o.trader_id, r.status, `${text} ${what}`, o.id, now);
    }
    return true;
  }

  /** A fill's money: a buy's cost leaves available cash (what is not there is owed), a sell's proceeds arrive. */
  private async bookFill(tx: Queryable, o: OrderRow, fill: { deal_id: string; price: string; quantity: string }, at: Date, events: EventBatch): Promise<void> {
    const value = fillCents(cents(fill.price), micro(fill.quantity), minutesOf(o));
    const change = o.side === 'buy' ? -value : value;
    const base = { trader_id: o.trader_id, kind: o.side === 'buy' ? 'fill_cost' as const : 'fill_proceeds' as const, at, order_id: o.id, trade_id: fill.deal_id };
    let done = await book(tx, { ...base, available: change }, change < 0n ? -change : undefined);
    if (!done) {
      const [acc] = await tx.query<{ available: string }>(sql`SELECT available FROM accounts WHERE trader_id = ${o.trader_id} FOR UPDATE`);
      const there = cents(acc!.available);
      const paid = minBig(there, -change);
      done = await book(tx, { ...base, available: -paid, owed: -change - paid });
      this.options.log.warn('a fill cost more than the cash there was: the rest is owed', { order_id: o.id, trade_id: fill.deal_id, cost: eur(-change), owed: eur(-change - paid) });
    }
    events.balance(done!);
  }

  /** Expires open orders whose product's gate has closed, releasing their holds. */
  async expireDue(limit = 200): Promise<number> {
    const now = this.options.clock.now();
    const events = new EventBatch();
    const cutoff = new Date(now.getTime() + this.options.gateClosureMinutes * 60_000);
    const { n, written } = await this.db.transaction(async (tx) => {
      const rows = await tx.query<OrderRow>(sql`
        SELECT ${orderColumnList} FROM orders
        WHERE status IN ('pending_new', 'new', 'partially_filled', 'pending_cancel', 'pending_replace') AND delivery_start <= ${cutoff}
        ORDER BY id LIMIT ${limit} FOR UPDATE SKIP LOCKED`);
      // Accounts in trader_id order, as placements and reports lock them (no deadlock between them).
      if (rows.length) await lockAccounts(tx, [...new Set(rows.map((o) => o.trader_id))]);
      for (const o of rows) {
        o.status = 'expired';
        o.pending_quantity = o.pending_limit = null;
        o.resume_status = null;
        o.updated_at = now;
        await settleHolds(tx, o, this.policy, now, events);
      }
      await saveOrders(tx, rows);
      for (const api of await this.apisOf(tx, rows)) events.order(api);
      for (const o of rows) {
        events.notify(o.trader_id, 'expired', `${this.describe(o)} expired at gate closure${Number(o.filled_quantity) > 0 ? ` (${Number(o.filled_quantity)} of ${Number(o.quantity)} MW filled)` : ''}`, o.id, now);
      }
      return { n: rows.length, written: rows.length ? await events.write(tx, this.options.publishEvents ?? false, now) : [] };
    });
    if (n) this.committed(written, false);
    return n;
  }

  /** Runs expireDue every `everyMs` until the returned function is called. */
  startExpirySweep(everyMs: number): () => Promise<void> {
    let running: Promise<unknown> = Promise.resolve();
    const timer = setInterval(() => {
      running = running.then(() => this.expireDue()).catch((error: Error) => this.options.log.warn('order expiry sweep failed (tried again)', { error: error.message }));
    }, everyMs);
    timer.unref?.();
    return async () => { clearInterval(timer); await running; };
  }
}

/** Writes the orders' changeable columns back, in one statement. */
async function saveOrders(tx: Queryable, rows: OrderRow[]): Promise<void> {
  if (!rows.length) return;
  const col = <K extends keyof OrderRow>(k: K) => rows.map((o) => o[k]);
  await tx.query(sql`
    UPDATE orders o SET status = u.status, quantity = u.quantity, limit_price = u.limit_price, filled_quantity = u.filled_quantity, filled_value = u.filled_value,
      held = u.held, held_mw = u.held_mw, pending_quantity = u.pending_quantity, pending_limit = u.pending_limit, resume_status = u.resume_status,
      reject_reason = u.reject_reason, exchange_order_id = u.exchange_order_id, updated_at = u.updated_at
    FROM unnest(${col('id')}::uuid[], ${col('status')}::text[], ${col('quantity')}::numeric[], ${col('limit_price')}::numeric[], ${col('filled_quantity')}::numeric[],
      ${col('filled_value')}::numeric[], ${col('held')}::numeric[], ${col('held_mw')}::numeric[], ${col('pending_quantity')}::numeric[], ${col('pending_limit')}::numeric[],
      ${col('resume_status')}::text[], ${col('reject_reason')}::text[], ${col('exchange_order_id')}::text[], ${rows.map((o) => o.updated_at.toISOString())}::timestamptz[])
      AS u(id, status, quantity, limit_price, filled_quantity, filled_value, held, held_mw, pending_quantity, pending_limit, resume_status, reject_reason, exchange_order_id, updated_at)
    WHERE o.id = u.id`);
}
