// The Trade of the public trades API (the exchange team's contract): price in eurocent/MWh as an
// integer, quantity in MW, delivery_hour the integer local start hour, and delivery_period for
// products that are not the plain hour (quarter hours, the repeated autumn hour). The same
// schema validates requests, CSV rows and generates the OpenAPI document.
import { z } from 'zod';
import { parseDay } from '../time/market-time';

const printable = /^[\x21-\x7E]+$/;

export const dayString = z
  .string({ error: 'must be a date YYYY-MM-DD' })
  .refine((s) => parseDay(s) !== undefined, { error: (i) => `must be a calendar date YYYY-MM-DD (got ${JSON.stringify(i.input)})` })
  .meta({ format: 'date', example: '2023-02-06' });

export const utcDateTime = z
  .string({ error: 'must be an ISO-8601 date-time such as 2023-02-06T06:13:45Z' })
  .refine((s) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(s) && !Number.isNaN(Date.parse(s)), {
    error: (i) => `must be an ISO-8601 date-time with Z or an offset, such as 2023-02-06T06:13:45Z (got ${JSON.stringify(i.input)})`,
  })
  .meta({ format: 'date-time', example: '2023-02-06T06:13:45Z' });

export const identifier = (what: string) =>
  z
    .string({ error: `must be a string (the ${what})` })
    .min(1, { error: 'must not be empty', abort: true })
    .max(128, { error: 'must be at most 128 characters' })
    .regex(printable, { error: 'must be printable ASCII without spaces' });

export const maxPriceCents = 100_000_000; // ±1,000,000 EUR/MWh: far beyond any exchange's limits
export const maxQuantityMw = 100_000;

export const Direction = z.enum(['buy', 'sell'], { error: (i) => `must be "buy" or "sell" (got ${JSON.stringify(i.input)})` });

export const Trade = z
  .strictObject({
    id: identifier('exchange deal id').meta({ example: '123' }),
    price: z
      .number({ error: 'must be a number: the price in eurocent per MWh' })
      .int({ error: (i) => `must be an integer number of eurocent per MWh (got ${String(i.input)})`, abort: true })
      .min(-maxPriceCents, { error: `must be at least -${maxPriceCents}` })
      .max(maxPriceCents, { error: `must be at most ${maxPriceCents}` })
      .meta({ description: 'Price in eurocent per MWh (2050 = 20.50 EUR/MWh); negative prices are valid.', example: 2050 }),
    quantity: z
      .number({ error: 'must be a number: the quantity in MW' })
      .gt(0, { error: (i) => `must be greater than 0 MW (got ${String(i.input)})`, abort: true })
      .max(maxQuantityMw, { error: `must be at most ${maxQuantityMw} MW`, abort: true })
      .refine((q) => /^-?\d+(\.\d{1,6})?$/.test(String(q)), { error: 'must have at most 6 decimal places' })
      .meta({ description: 'Quantity in MW.', example: 12.3 }),
    direction: Direction,
    delivery_day: dayString.meta({ description: 'Local market delivery day (MARKET_TZ).' }),
    delivery_hour: z
      .number({ error: 'must be an integer from 0 to 23: the local start hour' })
      .int({ error: (i) => `must be an integer from 0 to 23 (got ${String(i.input)})`, abort: true })
      .min(0, { error: (i) => `must be from 0 to 23 (got ${String(i.input)})` })
      .max(23, { error: (i) => `must be from 0 to 23 (got ${String(i.input)})` })
      .meta({ description: 'Local start hour: 14 means 14:00-15:00. On the 25-hour day, 2 is the first 02:00 hour.', example: 8 }),
    delivery_period: z
      .string({ error: 'must be a period string such as "08:15-08:30" or "02-03B"' })
      .max(16, { error: 'must be a period string such as "08:15-08:30" or "02-03B"', abort: true })
      .optional()
      .meta({
        description: 'The product, in the exchange\'s notation, when it is not the plain hour that delivery_hour names: quarter hours ("08:15-08:30"; any period of whole quarter hours up to one hour) and, on the 25-hour day, the second of the two 02:00 hours ("02-03B", "02:15-02:30B"; no suffix or "A" is the first). It must start in hour delivery_hour. Optional on input ("08-09" is the plain hour 8); returned only for such products.',
        example: '08:15-08:30',
      }),
    trader_id: identifier('trader id').meta({ example: 'trader_1' }),
    execution_time: utcDateTime.meta({ description: 'When the exchange executed the deal (UTC).' }),
  })
  .meta({ id: 'Trade' });

export type TradeInput = z.infer<typeof Trade>;

export const TradeQuery = z.strictObject({
  trader_id: identifier('trader id').optional(),
  delivery_day: dayString.optional(),
});
