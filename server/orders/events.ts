// What a trading transaction tells the world, committed with it: notifications kept for the
// inbox, one NOTIFY on trading_events (the live hub turns it into `order`, `balance` and
// `notification` pushes) and, with RabbitMQ configured, the same events in the outbox for the
// topic exchange.
import type { Queryable } from '../db';
import { sql } from '../db';
import { eur, cents } from '../accounts/money';
import type { ApiOrder } from './model';

export const tradingEventsChannel = 'trading_events';

export interface ApiBalance {
  trader_id: string;
  available: string;
  held: string;
  total: string;
  owed: string;
  currency: 'EUR';
  updated_at: string;
}

export interface ApiNotification {
  id: number;
  trader_id: string;
  at: string;
  kind: string;
  text: string;
  order_id: string | null;
  read: boolean;
}

/** One NOTIFY payload item. */
export type TradingEvent =
  | { type: 'order'; trader_id: string; order: ApiOrder }
  | { type: 'balance'; trader_id: string; balance: ApiBalance }
  | { type: 'notification'; trader_id: string; notification: ApiNotification };

export function apiBalance(b: { trader_id: string; available: string; held: string; owed?: string; updated_at: Date }): ApiBalance {
  const a = cents(b.available);
  const h = cents(b.held);
  const o = cents(b.owed ?? '0');
  return { trader_id: b.trader_id, available: eur(a), held: eur(h), total: eur(a + h - o), owed: eur(o), currency: 'EUR', updated_at: b.updated_at.toISOString() };
}

/** Collects a transaction's events and writes them once, at its end. */
export class EventBatch {
  private events: TradingEvent[] = [];
  private notes: { trader_id: string; kind: string; text: string; order_id: string | null; at: Date }[] = [];
  private balances = new Map<string, ApiBalance>();

  order(order: ApiOrder): void {
    const i = this.events.findIndex((e) => e.type === 'order' && e.order.id === order.id);
    if (i >= 0) this.events.splice(i, 1); // the latest state of an order is enough
    this.events.push({ type: 'order', trader_id: order.trader_id, order });
  }

  /** The account's balance after a movement (the latest one of the transaction is pushed). */
  balance(b: { trader_id: string; available: string; held: string; owed?: string; updated_at: Date }): void {
    this.balances.set(b.trader_id, apiBalance(b));
  }

  notify(traderId: string, kind: string, text: string, orderId: string | null, at: Date): void {
    this.notes.push({ trader_id: traderId, kind, text, order_id: orderId, at });
  }

  /** A notification the caller inserted itself (in a statement of its own). */
  notified(n: ApiNotification): void {
    this.events.push({ type: 'notification', trader_id: n.trader_id, notification: n });
  }

  get empty(): boolean {
    return !this.events.length && !this.notes.length && !this.balances.size;
  }

  /** Inserts the notifications and NOTIFYs everything (inside the transaction: heard only after commit). */
  async write(tx: Queryable, publishEvents: boolean, at: Date): Promise<TradingEvent[]> {
    const events = [...this.events];
    if (this.notes.length) {
      const rows = await tx.query<{ id: number; trader_id: string; at: Date; kind: string; text: string; order_id: string | null }>(sql`
        INSERT INTO notifications (trader_id, at, kind, text, order_id)
        SELECT * FROM unnest(${this.notes.map((n) => n.trader_id)}::text[], ${this.notes.map((n) => n.at.toISOString())}::timestamptz[], ${this.notes.map((n) => n.kind)}::text[], ${this.notes.map((n) => n.text)}::text[], ${this.notes.map((n) => n.order_id)}::uuid[])
        RETURNING id, trader_id, at, kind, text, order_id`);
      for (const r of rows) events.push({ type: 'notification', trader_id: r.trader_id, notification: { id: Number(r.id), trader_id: r.trader_id, at: r.at.toISOString(), kind: r.kind, text: r.text, order_id: r.order_id, read: false } });
    }
    for (const balance of this.balances.values()) events.push({ type: 'balance', trader_id: balance.trader_id, balance });
    if (!events.length) return events;
    const payloads = chunk(events.map((e) => JSON.stringify(e.type === 'order' && JSON.stringify(e).length > 6000 ? { ...e, order: { ...e.order, fills: e.order.fills.slice(-20) } } : e)));
    await tx.query(sql`SELECT pg_notify(${tradingEventsChannel}, payload) FROM unnest(${payloads}::text[]) WITH ORDINALITY AS p(payload, n) ORDER BY n`);
    if (publishEvents) {
      await tx.query(sql`
        INSERT INTO outbox (destination, routing_key, frame, created_at)
        SELECT 'events', k, f::jsonb, ${at} FROM unnest(${events.map(routingKey)}::text[], ${events.map((e) => JSON.stringify(e))}::text[]) AS e(k, f)`);
    }
    return events;
  }
}

/** Topic routing keys: order.<status>, balance.updated, notification.<kind>. */
export function routingKey(e: TradingEvent): string {
  if (e.type === 'order') return `order.${e.order.status}`;
  if (e.type === 'balance') return 'balance.updated';
  return `notification.${e.notification.kind}`;
}

/** JSON arrays under the NOTIFY payload limit. */
function chunk(items: string[]): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  let size = 2;
  for (const item of items) {
    if (cur.length && size + item.length + 1 > 7000) {
      out.push(`[${cur.join(',')}]`);
      cur = [];
      size = 2;
    }
    cur.push(item);
    size += item.length + 1;
  }
  if (cur.length) out.push(`[${cur.join(',')}]`);
  return out;
}
