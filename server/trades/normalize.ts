// One normalised `trades` row from any source: exact decimals in EUR/MWh and MW, the delivery
// period as UTC instants from the local day and hour in the market time zone.
import { formatIssues } from '../http/errors';
import { deliveryHour, hoursOfDay, MarketTimeError, toLocal } from '../time/market-time';
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

/**
 * The local start hour, from the cached hours of the delivery day (a per-row Intl conversion
 * dominated bulk ingestion); periods not starting on a full hour fall back to the conversion.
 */
function startHour(row: TradeRow, tz: string): number {
  const ms = row.delivery_start.getTime();
  try {
    const slot = hoursOfDay(row.delivery_day, tz).find((s) => s.start.getTime() === ms);
    if (slot) return slot.hour;
  } catch { /* not a day of this zone's calendar: convert below */ }
  return toLocal(row.delivery_start, tz).hour;
}

export function toApiTrade(row: TradeRow, tz: string): ApiTrade {
  return {
    id: row.id,
    price: eurToCents(row.price),
    quantity: Number(trimDecimal(row.quantity)),
    direction: row.direction,
    delivery_day: row.delivery_day,
    delivery_hour: startHour(row, tz),
    trader_id: row.trader_id,
    execution_time: row.execution_time.toISOString().replace('.000Z', 'Z'),
  };
}
