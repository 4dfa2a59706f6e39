// One normalised `trades` row from any source: exact decimals in EUR/MWh and MW, the delivery
// period as UTC instants from the local day and hour (or period) in the market time zone, and
// back to the API's Trade.
import { formatIssues } from '../http/errors';
import { deliveryHour, formatPeriod, isPlainHour, MarketTimeError, parsePeriod, productOf } from '../time/market-time';
import { centsToEur, eurToCents, numberToDecimal, trimDecimal } from './decimal';
import { Trade, type TradeInput } from './schema';

export type TradeSource = 'feed' | 'file' | 'api';

export interface TradeRow {
  id: string;
  trader_id: string;
  direction: 'buy' | 'sell';
  /** EUR/MWh, exact decimal text. */
  price: string;
  /** MW, exact decimal text. */
  quantity: string;
  delivery_day: string;
  delivery_start: Date;
  delivery_end: Date;
  execution_time: Date;
  /** Set by the exchange feed: executed after the product's gate closure (stored all the same). */
  after_gate_closure?: boolean;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; message: string };

/** Validates a Trade of the public API (REST body, CSV row) and normalises it. */
export function checkApiTrade(input: unknown, tz: string): Checked<TradeRow> {
  const parsed = Trade.safeParse(input, { reportInput: true });
  if (!parsed.success) return { ok: false, message: formatIssues(parsed.error.issues) };
  return fromApiTrade(parsed.data, tz);
}

export function fromApiTrade(t: TradeInput, tz: string): Checked<TradeRow> {
  let period;
  try {
    period = t.delivery_period === undefined ? deliveryHour(t.delivery_day, t.delivery_hour, tz) : parsePeriod(t.delivery_day, t.delivery_period, tz);
  } catch (error) {
    if (error instanceof MarketTimeError) return { ok: false, message: `${t.delivery_period === undefined ? 'delivery_hour' : 'delivery_period'}: ${error.message}` };
    throw error;
  }
  if (t.delivery_period !== undefined) {
    const { hour } = apiProduct(t.delivery_day, period.start, period.end, tz);
    if (hour !== t.delivery_hour) return { ok: false, message: `delivery_hour: ${t.delivery_hour} does not match delivery_period ${JSON.stringify(t.delivery_period)}, which starts in hour ${hour}` };
  }
  return {
    ok: true,
    value: {
      id: t.id,
      trader_id: t.trader_id,
      direction: t.direction,
      price: centsToEur(t.price),
      quantity: numberToDecimal(t.quantity)!,
      delivery_day: t.delivery_day,
      delivery_start: period.start,
      delivery_end: period.end,
      execution_time: new Date(t.execution_time),
    },
  };
}

/**
 * A stored row as the public API shows it: price back in eurocent, the local start hour, and the
 * period for a product that is not the plain hour, so that posting it back is a duplicate.
 */
export interface ApiTrade {
  id: string;
  price: number;
  quantity: number;
  direction: 'buy' | 'sell';
  delivery_day: string;
  delivery_hour: number;
  /** Only for products other than the plain hour: "08:15-08:30", "02-03B". */
  delivery_period?: string;
  trader_id: string;
  execution_time: string;
}

/** A trade the exchange recalled (a mistrade): kept, but out of PnL and reports from then on. */
export type RecalledTrade = ApiTrade & { recall: { reason: string; recalled_at: string } };

// Intl formatting costs microseconds per call; a desk trades a few thousand distinct periods.
const productCache = new Map<string, { hour: number; period?: string }>();

/** The API's view of a delivery period: its local start hour, and its period unless it is the plain hour. */
export function apiProduct(day: string, start: Date, end: Date, tz: string): { hour: number; period?: string } {
  const key = `${tz}|${day}|${start.getTime()}|${end.getTime()}`;
  let found = productCache.get(key);
  if (found === undefined) {
    const product = productOf(day, start, end, tz);
    found = isPlainHour(product) ? { hour: product.slot.hour } : { hour: product.slot.hour, period: formatPeriod(product) };
    if (productCache.size > 100_000) productCache.clear();
    productCache.set(key, found);
  }
  return found;
}

export function toApiTrade(row: TradeRow, tz: string): ApiTrade {
  const product = apiProduct(row.delivery_day, row.delivery_start, row.delivery_end, tz);
  return {
    id: row.id,
    price: eurToCents(row.price),
    quantity: Number(trimDecimal(row.quantity)),
    direction: row.direction,
    delivery_day: row.delivery_day,
    delivery_hour: product.hour,
    ...(product.period === undefined ? {} : { delivery_period: product.period }),
    trader_id: row.trader_id,
    execution_time: row.execution_time.toISOString().replace('.000Z', 'Z'),
  };
}
