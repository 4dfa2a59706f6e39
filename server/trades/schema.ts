// The Trade of the public trades API (the exchange team's contract): price in eurocent/MWh as an
// integer, quantity in MW, delivery_hour the integer local start hour, and delivery_period for
// products that are not the plain hour (quarter hours, the repeated autumn hour). The same
// schema validates requests, CSV rows and generates the OpenAPI document.
import { z } from 'zod';
import { parseDay } from '../time/market-time';

const printable = /^[\x21-\x7E]+$/;

/** Calendar dates the desk handles: from 1900 (every market zone on standard offsets) to 9999. */
export const minDay = '1900-01-01';
export const maxDay = '9999-12-31';

export const dayString = z
  .string({ error: 'must be a date YYYY-MM-DD' })
  .refine((s) => parseDay(s) !== undefined, { error: (i) => `must be a calendar date YYYY-MM-DD (got ${JSON.stringify(i.input)})`, abort: true })
  .refine((s) => s >= minDay && s <= maxDay, { error: (i) => `must be a date from ${minDay} to ${maxDay} (got ${JSON.stringify(i.input)})` })
  .meta({ format: 'date', example: '2023-02-06' });

const instantPattern = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|([+-])(\d{2}):(\d{2}))$/;

/**
 * An ISO-8601 instant as the database can store it exactly, or why not: a real calendar date and
 * time of day (no 2023-02-30, no T24:00), an offset within ±23:59, a UTC year from 0001 to 9999,
 * and no digits finer than the millisecond (a JS Date has no more; finer ones would be dropped).
 */
export function instantProblem(s: string): string | undefined {
  const m = instantPattern.exec(s);
  if (!m) return 'must be an ISO-8601 date-time with Z or an offset, such as 2023-02-06T06:13:45Z';
  const [y, mo, d, h, mi, sec = '0', frac = ''] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), m[6], m[7]];
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  const monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1];
  if (monthDays === undefined || d < 1 || d > monthDays) return `${m[1]}-${m[2]}-${m[3]} is not a calendar date`;
  if (h > 23 || mi > 59 || Number(sec) > 59) return `${m[4]}:${m[5]}${m[6] ? `:${m[6]}` : ''} is not a time of day (00:00:00 to 23:59:59)`;
  if (m[10] !== undefined && (Number(m[10]) > 23 || Number(m[11]) > 59)) return `offset ${m[9]}${m[10]}:${m[11]} is not a UTC offset`;
  if (/[1-9]/.test(frac.slice(3))) return 'must have at most millisecond precision (3 decimal places of seconds)';
  const ms = Date.parse(s);
  const year = Number.isNaN(ms) ? NaN : new Date(ms).getUTCFullYear();
  if (!(year >= 1 && year <= 9999)) return `is outside the years 0001 to 9999 in UTC`;
  return undefined;
}

export const utcDateTime = z
  .string({ error: 'must be an ISO-8601 date-time such as 2023-02-06T06:13:45Z' })
  .check((ctx) => {
    const problem = instantProblem(ctx.value);
    if (problem) ctx.issues.push({ code: 'custom', message: `${problem} (got ${JSON.stringify(ctx.value)})`, input: ctx.value });
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
    execution_time: utcDateTime.meta({ description: 'When the exchange executed the deal (UTC), at most to the millisecond; years 0001 to 9999 in UTC.' }),
  })
  .meta({ id: 'Trade' });

export type TradeInput = z.infer<typeof Trade>;

export const TradeQuery = z.strictObject({
  trader_id: identifier('trader id').optional(),
  delivery_day: dayString.optional(),
});
