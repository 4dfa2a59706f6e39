// GET /v1/reports/pnl (one trader's day, hour by hour) and GET /v1/reports/desk (every trader's totals).
import { Hono } from 'hono';
import { z } from 'zod';
import { canSeeDesk, type User } from '../auth/users';
import type { AppDeps, AppEnv } from '../http/context';
import { badRequest, forbidden } from '../http/errors';
import { ErrorResponse } from '../http/openapi';
import { parseQuery } from '../http/validate';
import { dayString, identifier } from '../trades/schema';
import { deskReport, pnlReport } from './pnl';

const money = (description: string) => z.number().meta({ description: `${description}, EUR rounded to cents` });
const nullableNumber = (description: string) => z.number().nullable().meta({ description });

export const PnlTotalSchema = z.object({
  trades: z.number().int(),
  buy_mw: z.number().meta({ description: 'Σ quantity bought, MW' }),
  sell_mw: z.number().meta({ description: 'Σ quantity sold, MW' }),
  pnl_eur: money('Σ sell price·energy − Σ buy price·energy (energy = MW × period hours)'),
  net_mw: z.number().meta({ description: 'buy_mw − sell_mw' }),
  vwap_buy: nullableNumber('Energy-weighted average buy price, EUR/MWh; null when nothing was bought'),
  vwap_sell: nullableNumber('Energy-weighted average sell price, EUR/MWh; null when nothing was sold'),
  ref_price: nullableNumber('Latest reference price of the hour, EUR/MWh; null when undefined (always null in totals)'),
  mtm_pnl_eur: nullableNumber('pnl_eur + (energy bought − energy sold) × ref_price, EUR; null without a reference price'),
  vs_ref_eur: nullableNumber('Σ sell (price − ref)·energy + Σ buy (ref − price)·energy, EUR; null without a reference price'),
});

export const PnlHourSchema = PnlTotalSchema.extend({
  label: z.string().meta({ example: '08-09', description: 'Local hour; the repeated autumn hour is labelled with its UTC offset, e.g. "02-03 (+02:00)"' }),
  delivery_start: z.string().meta({ format: 'date-time' }),
  delivery_end: z.string().meta({ format: 'date-time' }),
}).meta({ id: 'PnlHour' });

export const PnlReportSchema = z.object({
  trader_id: z.string(),
  delivery_day: z.string().meta({ format: 'date' }),
  timezone: z.string().meta({ example: 'Europe/Berlin' }),
  hours: z.array(PnlHourSchema).meta({ description: 'Every hour of the local day: 24, or 23/25 on DST days' }),
  total: PnlTotalSchema,
}).meta({ id: 'PnlReport' });

export const DeskReportSchema = z.object({
  delivery_day: z.string().meta({ format: 'date' }),
  timezone: z.string(),
  traders: z.array(PnlTotalSchema.extend({ trader_id: z.string() })),
  total: PnlTotalSchema,
}).meta({ id: 'DeskReport' });

export const PnlQuery = z.strictObject({
  trader_id: identifier('trader id').optional().meta({ description: 'Required except for a trader, who gets her own by default' }),
  delivery_day: dayString,
});

export const DeskQuery = z.strictObject({ delivery_day: dayString });

/** The trader whose report a user asks for; traders see only their own. */
export function reportTrader(user: User, requested: string | undefined): string {
  if (!canSeeDesk(user)) {
    if (requested !== undefined && requested !== user.trader_id) throw forbidden(`trader_id: you may only see your own report (${user.trader_id})`);
    return user.trader_id!;
  }
  if (requested === undefined) throw badRequest('trader_id: is required');
  return requested;
}

export function reportsRoutes(deps: AppDeps): Hono<AppEnv> {
  const { db, tz, openapi } = deps;
  const app = new Hono<AppEnv>();

  openapi.add({
    method: 'get', path: '/v1/reports/pnl', tag: 'reports', summary: 'PnL of one trader for one local delivery day, hour by hour',
    description: 'Every hour of the day is listed (zeros where nothing traded). A trader sees only her own report.',
    query: PnlQuery,
    responses: { 200: { description: 'The report', schema: PnlReportSchema }, 400: { description: 'Invalid query parameter', schema: ErrorResponse }, 403: { description: "Another trader's report", schema: ErrorResponse } },
  });
  app.get('/pnl', async (c) => {
    const query = parseQuery(c, PnlQuery);
    const traderId = reportTrader(c.get('user'), query.trader_id);
    await deps.pnlFreshness?.settled();
    if (deps.reports) return c.body(await deps.reports.getJson(traderId, query.delivery_day), 200, { 'content-type': 'application/json' });
    return c.json(await pnlReport(db, traderId, query.delivery_day, tz));
  });

  openapi.add({
    method: 'get', path: '/v1/reports/desk', tag: 'reports', summary: "Every trader's PnL totals for one local delivery day",
    description: 'For roles that see the desk (admin, analyst, service); traders get 403.',
    query: DeskQuery,
    responses: { 200: { description: 'Totals per trader and for the desk', schema: DeskReportSchema }, 400: { description: 'Invalid query parameter', schema: ErrorResponse }, 403: { description: 'Role may not see the desk', schema: ErrorResponse } },
  });
  app.get('/desk', async (c) => {
    const query = parseQuery(c, DeskQuery);
    const user = c.get('user');
    if (!canSeeDesk(user)) throw forbidden(`role ${user.role} may not see the desk report; ask for your own: /v1/reports/pnl`);
    await deps.pnlFreshness?.settled();
    return c.json(await deskReport(db, query.delivery_day, tz));
  });

  return app;
}
