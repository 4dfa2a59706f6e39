// Requests and responses of the orders API, as zod schemas (validation and the OpenAPI document).
import { z } from 'zod';
import { Trade, dayString, identifier } from '../trades/schema';

/** ±9,999 EUR/MWh: the exchange's price limits, in eurocent/MWh. */
export const maxOrderPriceCents = 999_900;

const quantity = z
  .number({ error: 'must be a number: the quantity in MW' })
  .gt(0, { error: (i) => `must be a positive multiple of 0.1 MW (got ${String(i.input)})`, abort: true })
  .max(100_000, { error: 'must be at most 100000 MW', abort: true })
  .refine((q) => /^\d+(\.\d)?$/.test(String(q)), { error: (i) => `must be a positive multiple of 0.1 MW (got ${String(i.input)})` })
  .meta({ description: 'MW, a positive multiple of 0.1', example: 5 });

const limitPrice = z
  .number({ error: 'must be an integer number of eurocent per MWh' })
  .int({ error: (i) => `must be an integer number of eurocent per MWh (got ${String(i.input)})`, abort: true })
  .min(-maxOrderPriceCents, { error: (i) => `must be within -9999.00 to 9999.00 EUR/MWh, i.e. -${maxOrderPriceCents} to ${maxOrderPriceCents} eurocent/MWh (got ${String(i.input)})` })
  .max(maxOrderPriceCents, { error: (i) => `must be within -9999.00 to 9999.00 EUR/MWh, i.e. -${maxOrderPriceCents} to ${maxOrderPriceCents} eurocent/MWh (got ${String(i.input)})` })
  .meta({ description: 'Limit price in eurocent per MWh (5000 = 50.00 EUR/MWh); negative prices are valid', example: 5000 });

export const PlaceOrder = z
  .strictObject({
    client_order_id: identifier('client order id').optional().meta({ description: 'Your id for the order (unique per trader): placing the same content again returns the existing order; other content is 409. Default: the order id.' }),
    trader_id: identifier('trader id').optional().meta({ description: 'Default: your own trader_id (required for admin and service users)' }),
    side: z.enum(['buy', 'sell'], { error: (i) => `must be "buy" or "sell" (got ${JSON.stringify(i.input)})` }),
    type: z.enum(['limit', 'market'], { error: (i) => `must be "limit" or "market" (got ${JSON.stringify(i.input)})` }),
    time_in_force: z.enum(['gtc', 'ioc', 'fok'], { error: (i) => `must be "gtc", "ioc" or "fok" (got ${JSON.stringify(i.input)})` }).default('gtc'),
    delivery_day: dayString,
    delivery_hour: Trade.shape.delivery_hour,
    delivery_period: Trade.shape.delivery_period,
    quantity,
    limit_price: limitPrice.optional(),
  })
  .meta({ id: 'PlaceOrder' });
export type PlaceOrderInput = z.infer<typeof PlaceOrder>;

export const ReplaceOrder = z
  .strictObject({ quantity: quantity.optional(), limit_price: limitPrice.optional() })
  .refine((r) => r.quantity !== undefined || r.limit_price !== undefined, { error: 'body: give quantity, limit_price or both' })
  .meta({ id: 'ReplaceOrder' });

export const OrderSchema = z
  .object({
    id: z.string().meta({ format: 'uuid' }),
    client_order_id: z.string(),
    trader_id: z.string(),
    side: z.enum(['buy', 'sell']),
    type: z.enum(['limit', 'market']),
    time_in_force: z.enum(['gtc', 'ioc', 'fok']),
    delivery_day: z.string().meta({ format: 'date' }),
    delivery_hour: z.number().int(),
    delivery_period: z.string().meta({ description: 'The product in the exchange\'s notation: "08-09", "08:15-08:30", "02-03B"' }),
    quantity: z.number(),
    limit_price: z.number().int().nullable().meta({ description: 'eurocent/MWh; null for market orders' }),
    status: z.enum(['pending_new', 'new', 'partially_filled', 'filled', 'pending_cancel', 'canceled', 'pending_replace', 'rejected', 'expired']),
    filled_quantity: z.number(),
    avg_fill_price: z.number().nullable().meta({ description: 'eurocent/MWh, quantity-weighted' }),
    held: z.string().meta({ description: 'EUR held for this order now (buys)', example: '1250.00' }),
    held_quantity: z.number().meta({ description: 'MW held for this order now (sells)' }),
    reject_reason: z.string().nullable(),
    exchange_order_id: z.string().nullable(),
    pending: z.object({ quantity: z.number(), limit_price: z.number().int().nullable() }).nullable().meta({ description: 'A replace the exchange has not answered yet' }),
    created_at: z.string().meta({ format: 'date-time' }),
    updated_at: z.string().meta({ format: 'date-time' }),
    fills: z.array(z.object({ trade_id: z.string(), price: z.number().int(), quantity: z.number(), at: z.string().meta({ format: 'date-time' }) })),
  })
  .meta({ id: 'Order' });

export const OrderQuery = z.strictObject({
  trader_id: identifier('trader id').optional(),
  status: z.enum(['open', 'closed', 'all'], { error: (i) => `must be "open", "closed" or "all" (got ${JSON.stringify(i.input)})` }).default('all'),
  delivery_day: dayString.optional(),
  client_order_id: identifier('client order id').optional(),
  limit: z.coerce.number({ error: 'must be an integer from 1 to 500' }).int({ error: 'must be an integer from 1 to 500' }).min(1, { error: 'must be an integer from 1 to 500' }).max(500, { error: 'must be an integer from 1 to 500' }).default(100),
  cursor: z.string().regex(/^[A-Za-z0-9_-]{1,200}$/, { error: 'must be the next_cursor of an earlier page' }).optional(),
});

export const OrderId = z.strictObject({ id: z.string().meta({ format: 'uuid' }) });
