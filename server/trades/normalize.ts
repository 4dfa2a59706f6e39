// One normalised `trades` row from any source: exact decimals in EUR/MWh and MW, the delivery
// period as UTC instants from the local day and hour in the market time zone.
import { formatIssues } from '../http/errors';
import { deliveryHour, MarketTimeError, toLocal } from '../time/market-time';
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
    period = deliveryHour(t.delivery_day, t.delivery_hour, tz);
  } catch (error) {
    if (error instanceof MarketTimeError) return { ok: false, message: `delivery_hour: ${error.message}` };
    throw error;
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

/** A stored row as the public API shows it (price back in eurocent, hour as local start hour). */
export interface ApiTrade {
  id: string;
  price: number;
  quantity: number;
  direction: 'buy' | 'sell';
  delivery_day: string;
  delivery_hour: number;
  trader_id: string;
  execution_time: string;
}

/** A trade the exchange recalled (a mistrade): kept, but out of PnL and reports from then on. */
export type RecalledTrade = ApiTrade & { recall: { reason: string; recalled_at: string } };

// Intl formatting costs microseconds per call; a desk trades a few thousand distinct periods.
const hourCache = new Map<string, number>();
function localStartHour(start: Date, tz: string): number {
  const key = `${tz}|${start.getTime()}`;
  let hour = hourCache.get(key);
  if (hour === undefined) {
    hour = toLocal(start, tz).hour;
    if (hourCache.size > 100_000) hourCache.clear();
    hourCache.set(key, hour);
  }
  return hour;
}

export function toApiTrade(row: TradeRow, tz: string): ApiTrade {
  return {
    id: row.id,
    price: eurToCents(row.price),
    quantity: Number(trimDecimal(row.quantity)),
    direction: row.direction,
    delivery_day: row.delivery_day,
    delivery_hour: localStartHour(row.delivery_start, tz),
    trader_id: row.trader_id,
    execution_time: row.execution_time.toISOString().replace('.000Z', 'Z'),
  };
}
