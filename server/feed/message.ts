// Exchange frames -> TradeRows: `{"deal_confirmation": {...}}` (or the synonym key
// `trade_confirmation`) with price in EUR/MWh and quantity in MW as decimals and the delivery
// period as a string ("08-09", "08:15-08:30", "02-03B"). Anything else gets a reason naming the field.
// A deal executed after its product's gate closure is flagged (after_gate_closure) and kept.
import { z } from 'zod';
import { formatIssues } from '../http/errors';
import { defaultGateClosureMinutes, gateClosure, MarketTimeError, parsePeriod } from '../time/market-time';
import { decimalPlaces, numberToDecimal } from '../trades/decimal';
import type { Checked, TradeRow } from '../trades/normalize';
import { dayString, Direction, identifier, maxPriceCents, maxQuantityMw, utcDateTime } from '../trades/schema';

const plainDecimal = /^-?\d+(\.\d+)?$/;

/** A JSON number (or a decimal string) as exact decimal text. */
const decimal = (what: string) =>
  z
    .union([z.number(), z.string()], { error: `must be a number: the ${what}` })
    .transform((v, ctx) => {
      const text = typeof v === 'number' ? numberToDecimal(v) : v.trim();
      if (text === undefined || !plainDecimal.test(text)) {
        ctx.addIssue({ code: 'custom', message: `must be a plain decimal number: the ${what} (got ${JSON.stringify(v)})`, input: v });
        return z.NEVER;
      }
      return text;
    });

const maxPriceEur = maxPriceCents / 100;

export const FeedDeal = z.object({
  id: identifier('exchange deal id'),
  price: decimal('price in EUR/MWh').refine((p) => !p.includes('.') || decimalPlaces(p.replace(/0+$/, '')) <= 2, { error: (i) => `must have at most 2 decimal places (EUR/MWh to the cent; got ${String(i.input)})` })
    .refine((p) => Math.abs(Number(p)) <= maxPriceEur, { error: `must be within ±${maxPriceEur} EUR/MWh` }),
  quantity: decimal('quantity in MW')
    .refine((q) => Number(q) > 0, { error: (i) => `must be greater than 0 MW (got ${String(i.input)})` })
    .refine((q) => Number(q) <= maxQuantityMw, { error: `must be at most ${maxQuantityMw} MW` })
    .refine((q) => !q.includes('.') || decimalPlaces(q.replace(/0+$/, '')) <= 6, { error: 'must have at most 6 decimal places' }),
  direction: Direction,
  delivery_day: dayString,
  delivery_hour: z.string({ error: 'must be a period string such as "08-09", "08:15-08:30" or "02-03B"' }),
  trader_id: identifier('trader id'),
  execution_time: utcDateTime,
});

export type FeedMessageResult =
  | { kind: 'deal'; row: TradeRow }
  | { kind: 'invalid'; reason: string };

const envelopeKeys = ['deal_confirmation', 'trade_confirmation'] as const;

/** Parses one frame; never throws. `gateClosureMinutes`: trading of a product closes this long before its delivery starts. */
export function parseFeedMessage(raw: string, tz: string, gateClosureMinutes = defaultGateClosureMinutes): FeedMessageResult {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (error) {
    return { kind: 'invalid', reason: `message: not valid JSON (${(error as Error).message})` };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { kind: 'invalid', reason: 'message: must be a JSON object such as {"deal_confirmation": {...}}' };
  const keys = envelopeKeys.filter((k) => k in json);
  if (keys.length !== 1) {
    const got = Object.keys(json).slice(0, 5).map((k) => JSON.stringify(k)).join(', ') || 'none';
    return { kind: 'invalid', reason: keys.length ? 'message: has both deal_confirmation and trade_confirmation' : `message: expected the key "deal_confirmation" (or "trade_confirmation"); got keys ${got}` };
  }
  const key = keys[0]!;
  const checked = checkFeedDeal((json as Record<string, unknown>)[key], tz, key, gateClosureMinutes);
  return checked.ok ? { kind: 'deal', row: checked.value } : { kind: 'invalid', reason: checked.message };
}

export function checkFeedDeal(input: unknown, tz: string, prefix = 'deal_confirmation', gateClosureMinutes = defaultGateClosureMinutes): Checked<TradeRow> {
  const parsed = FeedDeal.safeParse(input, { reportInput: true });
  if (!parsed.success) return { ok: false, message: formatIssues(parsed.error.issues, prefix) };
  const d = parsed.data;
  let period;
  try {
    period = parsePeriod(d.delivery_day, d.delivery_hour, tz);
  } catch (error) {
    if (error instanceof MarketTimeError) return { ok: false, message: `${prefix}.delivery_hour: ${error.message}` };
    throw error;
  }
  const executed = new Date(d.execution_time);
  return {
    ok: true,
    value: {
      id: d.id, trader_id: d.trader_id, direction: d.direction, price: d.price, quantity: d.quantity,
      delivery_day: d.delivery_day, delivery_start: period.start, delivery_end: period.end, execution_time: executed,
      after_gate_closure: executed.getTime() > gateClosure(period.start, gateClosureMinutes).getTime(),
    },
  };
}
