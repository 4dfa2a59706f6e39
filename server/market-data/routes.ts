// GET /v1/reference-prices?delivery_day= : the latest observed reference price of every hour of
// the day; hours the provider has no value for are listed with value null (undefined, not 0).
import { Hono } from 'hono';
import { z } from 'zod';
import { sql } from '../db';
import type { AppDeps, AppEnv } from '../http/context';
import { ErrorResponse } from '../http/openapi';
import { parseQuery } from '../http/validate';
import { dayBounds, hoursOfDay, localDay } from '../time/market-time';
import { dayString } from '../trades/schema';

export const ReferencePriceQuery = z.strictObject({
  delivery_day: dayString.optional().meta({ description: 'Local market day; default today' }),
});

export const ReferencePriceHour = z.object({
  label: z.string().meta({ example: '08-09' }),
  delivery_start: z.string(),
  delivery_end: z.string(),
  value: z.number().nullable().meta({ description: 'Latest value; null when the provider has none (no deals yet)', example: 87.35 }),
  unit: z.string().nullable().meta({ example: 'EUR/MWh' }),
  last_update: z.string().nullable().meta({ description: "The provider's time of this value" }),
  observed_at: z.string().nullable().meta({ description: 'When the poller first saw this value' }),
});

export const ReferencePrices = z.object({ delivery_day: z.string(), hours: z.array(ReferencePriceHour) }).meta({ id: 'ReferencePrices' });

export function referencePriceRoutes(deps: AppDeps): Hono<AppEnv> {
  const { db, tz, clock, openapi } = deps;
  const app = new Hono<AppEnv>();
  openapi.add({
    method: 'get', path: '/v1/reference-prices', tag: 'reference prices', summary: 'Latest reference price per delivery hour of a day',
    description: 'Every hour of the local day is listed (23/24/25); value null means the provider has no value for it.',
    query: ReferencePriceQuery,
    responses: { 200: { description: 'The day\'s hours', schema: ReferencePrices }, 400: { description: 'Invalid query', schema: ErrorResponse } },
  });
  app.get('/', async (c) => {
    const q = parseQuery(c, ReferencePriceQuery);
    const day = q.delivery_day ?? localDay(clock.now(), tz);
    const bounds = dayBounds(day, tz);
    const rows = await db.query<{ delivery_start: Date; value: string; unit: string; last_update: Date; observed_at: Date }>(sql`
      SELECT delivery_start, value, unit, last_update, observed_at FROM reference_prices_latest
      WHERE delivery_start >= ${bounds.start} AND delivery_start < ${bounds.end}`);
    const byStart = new Map(rows.map((r) => [r.delivery_start.getTime(), r]));
    const hours = hoursOfDay(day, tz).map((slot) => {
      const r = byStart.get(slot.start.getTime());
      return {
        label: slot.label, delivery_start: slot.start.toISOString(), delivery_end: slot.end.toISOString(),
        value: r ? Number(r.value) : null, unit: r?.unit ?? null,
        last_update: r?.last_update.toISOString() ?? null, observed_at: r?.observed_at.toISOString() ?? null,
      };
    });
    return c.json({ delivery_day: day, hours });
  });
  return app;
}
