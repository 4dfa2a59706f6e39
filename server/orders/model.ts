// The order as stored and as the API shows it, and what it must hold: a buy holds limit price x
// energy of its unfilled quantity (a market buy: the price cap), a sell holds its unfilled MW;
// while a replace is pending, the larger of the old and the new order.
import { apiProduct } from '../trades/normalize';
import { cents, eur, holdCents, maxBig, micro } from '../accounts/money';
import { sql } from '../db/sql';

export const openStatuses = ['pending_new', 'new', 'partially_filled', 'pending_cancel', 'pending_replace'] as const;
export const finalStatuses = ['filled', 'canceled', 'rejected', 'expired'] as const;
export type OrderStatus = (typeof openStatuses)[number] | (typeof finalStatuses)[number];

/** What the stored and the API's order share. */
interface OrderIdentity {
  id: string;
  client_order_id: string;
  trader_id: string;
  side: 'buy' | 'sell';
  type: 'limit' | 'market';
  time_in_force: 'gtc' | 'ioc' | 'fok';
  delivery_day: string;
}

export interface OrderRow extends OrderIdentity {
  delivery_start: Date;
  delivery_end: Date;
  /** MW, decimal text. */
  quantity: string;
  /** EUR/MWh, decimal text; null for market orders. */
  limit_price: string | null;
  status: OrderStatus;
  filled_quantity: string;
  filled_value: string;
  /** EUR held now (buys). */
  held: string;
  /** MW held now (sells). */
  held_mw: string;
  pending_quantity: string | null;
  pending_limit: string | null;
  resume_status: OrderStatus | null;
  reject_reason: string | null;
  exchange_order_id: string | null;
  created_at: Date;
  updated_at: Date;
}

export const orderColumns = 'id, client_order_id, trader_id, side, type, time_in_force, delivery_day, delivery_start, delivery_end, quantity, limit_price, status, filled_quantity, filled_value, held, held_mw, pending_quantity, pending_limit, resume_status, reject_reason, exchange_order_id, created_at, updated_at';

/** The column list as a fixed SQL fragment (from code, never from input). */
export const orderColumnList = sql([orderColumns] as unknown as TemplateStringsArray);

/** JSON with sorted keys (jsonb does not keep the order of keys): placements compare their content with it. */
export function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

export interface FillRow {
  deal_id: string;
  order_id: string;
  price: string;
  quantity: string;
  at: Date;
}

export function isOpen(status: OrderStatus): boolean {
  return (openStatuses as readonly string[]).includes(status);
}

/** Minutes of delivery: energy = MW x minutes / 60. */
export function minutesOf(o: Pick<OrderRow, 'delivery_start' | 'delivery_end'>): number {
  return Math.round((o.delivery_end.getTime() - o.delivery_start.getTime()) / 60_000);
}

export interface HoldPolicy {
  /** EUR/MWh a market buy holds (the exchange's price cap unless configured). */
  marketHoldPrice: string;
}

/** What the order must hold now: cents (buys) and micro-MW (sells). */
export function requiredHold(o: OrderRow, policy: HoldPolicy): { cash: bigint; mw: bigint } {
  if (!isOpen(o.status)) return { cash: 0n, mw: 0n };
  const filled = micro(o.filled_quantity);
  const one = (quantity: string, limit: string | null) => {
    const rest = micro(quantity) - filled;
    if (rest <= 0n) return { cash: 0n, mw: 0n };
    if (o.side === 'sell') return { cash: 0n, mw: rest };
    return { cash: holdCents(cents(o.type === 'market' ? policy.marketHoldPrice : limit!), rest, minutesOf(o)), mw: 0n };
  };
  const now = one(o.quantity, o.limit_price);
  if (o.status !== 'pending_replace' && o.resume_status !== 'pending_replace') return now;
  const next = one(o.pending_quantity ?? o.quantity, o.pending_limit ?? o.limit_price);
  return { cash: maxBig(now.cash, next.cash), mw: maxBig(now.mw, next.mw) };
}

/** The Order of the API: prices in eurocent/MWh, quantities in MW, cash in EUR text. */
export interface ApiOrder extends OrderIdentity {
  delivery_hour: number;
  delivery_period: string;
  quantity: number;
  limit_price: number | null;
  status: OrderStatus;
  filled_quantity: number;
  avg_fill_price: number | null;
  held: string;
  held_quantity: number;
  reject_reason: string | null;
  exchange_order_id: string | null;
  /** A replace waiting for the exchange's answer. */
  pending: { quantity: number; limit_price: number | null } | null;
  created_at: string;
  updated_at: string;
  fills: { trade_id: string; price: number; quantity: number; at: string }[];
}

const priceCents = (p: string) => Number(cents(p));

export function toApiOrder(o: OrderRow, fills: readonly FillRow[], tz: string): ApiOrder {
  const product = apiProduct(o.delivery_day, o.delivery_start, o.delivery_end, tz);
  const filled = Number(o.filled_quantity);
  const pendingReplace = o.status === 'pending_replace' || o.resume_status === 'pending_replace';
  return {
    id: o.id, client_order_id: o.client_order_id, trader_id: o.trader_id, side: o.side, type: o.type, time_in_force: o.time_in_force,
    delivery_day: o.delivery_day, delivery_hour: product.hour, delivery_period: periodOf(o, tz),
    quantity: Number(o.quantity), limit_price: o.limit_price === null ? null : priceCents(o.limit_price), status: o.status,
    filled_quantity: Number(o.filled_quantity),
    avg_fill_price: filled > 0 ? Math.round((Number(o.filled_value) / filled) * 100 * 100) / 100 : null,
    held: eur(cents(o.held)), held_quantity: Number(o.held_mw), reject_reason: o.reject_reason, exchange_order_id: o.exchange_order_id,
    pending: pendingReplace ? { quantity: Number(o.pending_quantity ?? o.quantity), limit_price: (o.pending_limit ?? o.limit_price) === null ? null : priceCents((o.pending_limit ?? o.limit_price)!) } : null,
    created_at: o.created_at.toISOString(), updated_at: o.updated_at.toISOString(),
    fills: fills.map((f) => ({ trade_id: f.deal_id, price: priceCents(f.price), quantity: Number(f.quantity), at: f.at.toISOString() })),
  };
}

/** The product in the exchange's notation ("08-09", "08:15-08:30", "02-03B"). */
export function periodOf(o: Pick<OrderRow, 'delivery_day' | 'delivery_start' | 'delivery_end'>, tz: string): string {
  const p = apiProduct(o.delivery_day, o.delivery_start, o.delivery_end, tz);
  if (p.period !== undefined) return p.period;
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(p.hour)}-${pad((p.hour + 1) % 24)}`;
}
