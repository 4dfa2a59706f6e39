// The accounts API: cash in and out, balance, positions, portfolio, the ledger, notifications.
import { Hono } from 'hono';
import { z } from 'zod';
import { canSeeDesk } from '../auth/users';
import { sql } from '../db';
import type { AppDeps, AppEnv } from '../http/context';
import { badRequest, forbidden, notFound } from '../http/errors';
import { ErrorResponse } from '../http/openapi';
import { parseBody, parseQuery, readJson } from '../http/validate';
import { decodeCursor, encodeCursor, readingFor } from '../orders/access';
import { apiBalance } from '../orders/events';
import { tradingError } from '../orders/routes';
import type { Trading } from '../orders/trading';
import { dayString, identifier, utcDateTime } from '../trades/schema';
import { balanceOf, ensureAccount } from './ledger';
import { cents, eur } from './money';
import { positions, PositionSchema } from './positions';

const Balance = z.object({
  trader_id: z.string(), available: z.string().meta({ example: '9450.00' }), held: z.string().meta({ example: '550.00' }),
  total: z.string().meta({ description: 'available + held − owed', example: '10000.00' }), owed: z.string().meta({ description: 'What fills cost beyond the cash there was', example: '0.00' }),
  currency: z.literal('EUR'), updated_at: z.string().meta({ format: 'date-time' }),
}).meta({ id: 'Balance' });

const CashBody = z.strictObject({
  amount: z.union([z.string(), z.number()], { error: 'must be a decimal amount in EUR such as "1000.00" (positive: deposit, negative: withdrawal)' })
    .transform((v) => String(v).trim())
    .refine((v) => /^-?\d{1,15}(\.\d{1,2})?$/.test(v) && Number(v) !== 0, { error: (i) => `must be a non-zero amount in EUR with at most 2 decimals, such as "1000.00" (got ${JSON.stringify(i.input)})` }),
  memo: z.string({ error: 'must be a string' }).max(500, { error: 'must be at most 500 characters' }).optional(),
});

const AccountSettings = z.strictObject({
  short_limit_mw: z.number({ error: 'must be a number of MW (0 or more, a multiple of 0.1), or null for the default' }).min(0, { error: 'must be 0 or more MW' })
    .refine((q) => /^\d+(\.\d)?$/.test(String(q)), { error: 'must be a multiple of 0.1 MW' }).nullable(),
});

const TraderQuery = z.strictObject({ trader_id: identifier('trader id').optional() });
const PositionsQuery = z.strictObject({ trader_id: identifier('trader id').optional(), delivery_day: dayString.optional() });
const limit = z.coerce.number({ error: 'must be an integer from 1 to 500' }).int({ error: 'must be an integer from 1 to 500' }).min(1, { error: 'must be an integer from 1 to 500' }).max(500, { error: 'must be an integer from 1 to 500' }).default(100);
const cursor = z.string().regex(/^[A-Za-z0-9_-]{1,200}$/, { error: 'must be the next_cursor of an earlier page' }).optional();
const TransactionsQuery = z.strictObject({ trader_id: identifier('trader id').optional(), from: utcDateTime.optional(), to: utcDateTime.optional(), limit, cursor });
const NotificationsQuery = z.strictObject({
  trader_id: identifier('trader id').optional(),
  unread: z.enum(['true', 'false'], { error: 'must be true or false' }).optional(),
  limit, cursor,
});

const Transaction = z.object({
  id: z.number().int(), trader_id: z.string(), at: z.string().meta({ format: 'date-time' }),
  kind: z.enum(['deposit', 'withdrawal', 'hold', 'release', 'fill_cost', 'fill_proceeds']),
  amount: z.string().meta({ description: 'Change of available cash, EUR' }), held_amount: z.string().meta({ description: 'Change of held cash, EUR' }),
  owed_amount: z.string(), available_after: z.string(), held_after: z.string(), order_id: z.string().nullable(), trade_id: z.string().nullable(), memo: z.string().nullable(),
}).meta({ id: 'Transaction' });

const Notification = z.object({
  id: z.number().int(), trader_id: z.string(), at: z.string().meta({ format: 'date-time' }), kind: z.string(), text: z.string(), order_id: z.string().nullable(), read: z.boolean(),
}).meta({ id: 'Notification' });

const TraderParam = z.strictObject({ trader_id: z.string() });

export function accountsRoutes(deps: AppDeps): Hono<AppEnv> {
  const trading = deps.trading as Trading;
  const { openapi, db, clock } = deps;
  const app = new Hono<AppEnv>();

  openapi.add({
    method: 'post', path: '/v1/accounts/{trader_id}/cash', tag: 'accounts', summary: 'Deposit (positive amount) or withdraw (negative, at most the available cash) — admin only',
    params: TraderParam, body: { schema: CashBody },
    responses: { 200: { description: 'The balance after it', schema: Balance }, 400: { description: 'Invalid amount', schema: ErrorResponse }, 403: { description: 'Not an admin', schema: ErrorResponse }, 422: { description: 'A withdrawal of more than the available cash', schema: ErrorResponse } },
  });
  app.post('/:trader_id/cash', async (c) => {
    if (c.get('user').role !== 'admin') throw forbidden('only an admin may move cash in or out of an account');
    const traderId = parseBody(c.req.param('trader_id'), identifier('trader id'), 'trader_id');
    const body = parseBody(await readJson(c), CashBody);
    await trading.cash(traderId, cents(body.amount), body.memo ?? null).catch(tradingError);
    return c.json(apiBalance(await balanceOf(db, traderId)));
  });

  openapi.add({
    method: 'patch', path: '/v1/accounts/{trader_id}', tag: 'accounts', summary: 'Set an account\'s short limit in MW (admin only; null: the ORDER_SHORT_LIMIT_MW default)',
    params: TraderParam, body: { schema: AccountSettings },
    responses: { 200: { description: 'The account settings', schema: z.object({ trader_id: z.string(), short_limit_mw: z.number().nullable() }) }, 400: { description: 'Invalid', schema: ErrorResponse }, 403: { description: 'Not an admin', schema: ErrorResponse } },
  });
  app.patch('/:trader_id', async (c) => {
    if (c.get('user').role !== 'admin') throw forbidden('only an admin may change an account\'s short limit');
    const traderId = parseBody(c.req.param('trader_id'), identifier('trader id'), 'trader_id');
    const body = parseBody(await readJson(c), AccountSettings);
    await db.transaction(async (tx) => {
      await ensureAccount(tx, traderId, clock.now());
      await tx.query(sql`UPDATE accounts SET short_limit_mw = ${body.short_limit_mw === null ? null : String(body.short_limit_mw)}::numeric WHERE trader_id = ${traderId}`);
    });
    return c.json({ trader_id: traderId, short_limit_mw: body.short_limit_mw });
  });
  return app;
}

export function balanceRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  deps.openapi.add({
    method: 'get', path: '/v1/balance', tag: 'accounts', summary: 'Available, held and total cash of a trader (EUR)', query: TraderQuery,
    responses: { 200: { description: 'The balance; zero for an account never funded', schema: Balance }, 400: { description: 'trader_id missing (desk roles)', schema: ErrorResponse }, 403: { description: 'Another trader', schema: ErrorResponse } },
  });
  app.get('/', async (c) => {
    const q = parseQuery(c, TraderQuery);
    return c.json(apiBalance(await balanceOf(deps.db, readingFor(c.get('user'), q.trader_id, true))));
  });
  return app;
}

export function positionsRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  deps.openapi.add({
    method: 'get', path: '/v1/positions', tag: 'accounts', summary: 'Positions per delivery product, from all of the trader\'s trades (feed, file, API, fills)', query: PositionsQuery,
    responses: { 200: { description: 'Per product, in delivery order', schema: z.array(PositionSchema) }, 400: { description: 'Invalid query', schema: ErrorResponse }, 403: { description: 'Another trader', schema: ErrorResponse } },
  });
  app.get('/', async (c) => {
    const q = parseQuery(c, PositionsQuery);
    return c.json(await positions(deps.db, deps.tz, readingFor(c.get('user'), q.trader_id, true), { day: q.delivery_day }));
  });
  return app;
}

export function portfolioRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  deps.openapi.add({
    method: 'get', path: '/v1/portfolio', tag: 'accounts', summary: 'Open positions (products not yet delivered) at the reference price, and the balance', query: TraderQuery,
    responses: {
      200: { description: 'The portfolio', schema: z.object({ trader_id: z.string(), balance: Balance, positions: z.array(PositionSchema.extend({ value_eur: z.string().nullable() })), positions_value_eur: z.string().meta({ description: 'Σ value_eur of the positions that have a reference price' }), unpriced: z.number().int() }) },
      400: { description: 'Invalid query', schema: ErrorResponse }, 403: { description: 'Another trader', schema: ErrorResponse },
    },
  });
  app.get('/', async (c) => {
    const q = parseQuery(c, TraderQuery);
    const traderId = readingFor(c.get('user'), q.trader_id, true);
    const open = (await positions(deps.db, deps.tz, traderId, { after: deps.clock.now() })).filter((p) => p.net_mw !== 0);
    let total = 0n;
    let unpriced = 0;
    const rows = open.map((p) => {
      if (p.value_eur === null) unpriced += 1;
      else total += cents(p.value_eur);
      return p;
    });
    return c.json({ trader_id: traderId, balance: apiBalance(await balanceOf(deps.db, traderId)), positions: rows, positions_value_eur: eur(total), unpriced });
  });
  return app;
}

export function transactionsRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  deps.openapi.add({
    method: 'get', path: '/v1/transactions', tag: 'accounts', summary: 'The account\'s ledger, newest first: deposits, withdrawals, holds, releases, fill costs and proceeds',
    description: 'Append-only; every entry says the available and held cash after it. The sums of amount and held_amount over all entries are the balance.',
    query: TransactionsQuery,
    responses: { 200: { description: 'A page of entries', schema: z.object({ transactions: z.array(Transaction), next_cursor: z.string().nullable() }) }, 400: { description: 'Invalid query', schema: ErrorResponse }, 403: { description: 'Another trader', schema: ErrorResponse } },
  });
  app.get('/', async (c) => {
    const q = parseQuery(c, TransactionsQuery);
    const traderId = readingFor(c.get('user'), q.trader_id, true);
    const where = [sql`trader_id = ${traderId}`];
    if (q.from) where.push(sql`at >= ${new Date(q.from)}`);
    if (q.to) where.push(sql`at < ${new Date(q.to)}`);
    const after = decodeCursor(q.cursor, 1);
    if (after) {
      if (!/^\d+$/.test(after[0]!)) throw badRequest('cursor: not a next_cursor of this list');
      where.push(sql`id < ${Number(after[0])}`);
    }
    const rows = await deps.db.query<{ id: number; trader_id: string; at: Date; kind: string; amount: string; held_amount: string; owed_amount: string; available_after: string; held_after: string; order_id: string | null; trade_id: string | null; memo: string | null }>(sql`
      SELECT id, trader_id, at, kind, amount, held_amount, owed_amount, available_after, held_after, order_id, trade_id, memo
      FROM ledger WHERE ${sql.join(where, sql` AND `)} ORDER BY id DESC LIMIT ${q.limit}`);
    const last = rows[rows.length - 1];
    return c.json({ transactions: rows.map((r) => ({ ...r, id: Number(r.id), at: r.at.toISOString() })), next_cursor: rows.length === q.limit && last ? encodeCursor([Number(last.id)]) : null });
  });
  return app;
}

export function notificationsRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  deps.openapi.add({
    method: 'get', path: '/v1/notifications', tag: 'accounts', summary: 'The inbox: what traders were told (placements, fills, cancels, expiries, rejects, cash), newest first',
    description: 'Traders see their own; the desk roles see every trader\'s, or one trader\'s with trader_id.', query: NotificationsQuery,
    responses: { 200: { description: 'A page of notifications, and how many are unread', schema: z.object({ notifications: z.array(Notification), unread: z.number().int(), next_cursor: z.string().nullable() }) }, 400: { description: 'Invalid query', schema: ErrorResponse }, 403: { description: 'Another trader', schema: ErrorResponse } },
  });
  app.get('/', async (c) => {
    const q = parseQuery(c, NotificationsQuery);
    const traderId = readingFor(c.get('user'), q.trader_id);
    const where = [sql`TRUE`];
    if (traderId !== undefined) where.push(sql`trader_id = ${traderId}`);
    const counted = [...where];
    if (q.unread === 'true') where.push(sql`read_at IS NULL`);
    if (q.unread === 'false') where.push(sql`read_at IS NOT NULL`);
    const after = decodeCursor(q.cursor, 1);
    if (after) {
      if (!/^\d+$/.test(after[0]!)) throw badRequest('cursor: not a next_cursor of this list');
      where.push(sql`id < ${Number(after[0])}`);
    }
    const rows = await deps.db.query<{ id: number; trader_id: string; at: Date; kind: string; text: string; order_id: string | null; read_at: Date | null }>(sql`
      SELECT id, trader_id, at, kind, text, order_id, read_at FROM notifications WHERE ${sql.join(where, sql` AND `)} ORDER BY id DESC LIMIT ${q.limit}`);
    const [unread] = await deps.db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM notifications WHERE ${sql.join(counted, sql` AND `)} AND read_at IS NULL`);
    const last = rows[rows.length - 1];
    return c.json({
      notifications: rows.map((r) => ({ id: Number(r.id), trader_id: r.trader_id, at: r.at.toISOString(), kind: r.kind, text: r.text, order_id: r.order_id, read: r.read_at !== null })),
      unread: unread!.n, next_cursor: rows.length === q.limit && last ? encodeCursor([Number(last.id)]) : null,
    });
  });

  deps.openapi.add({
    method: 'post', path: '/v1/notifications/{id}/read', tag: 'accounts', summary: 'Mark a notification read', params: z.strictObject({ id: z.string() }),
    responses: { 200: { description: 'The notification', schema: Notification }, 404: { description: 'No such notification (or not yours)', schema: ErrorResponse } },
  });
  app.post('/:id/read', async (c) => {
    const id = c.req.param('id');
    if (!/^\d{1,15}$/.test(id)) throw notFound(`id: no notification ${id}`);
    const user = c.get('user');
    const [row] = await deps.db.query<{ id: number; trader_id: string; at: Date; kind: string; text: string; order_id: string | null }>(sql`
      UPDATE notifications SET read_at = coalesce(read_at, ${deps.clock.now()})
      WHERE id = ${Number(id)} AND (${canSeeDesk(user)} OR trader_id = ${user.trader_id ?? ''})
      RETURNING id, trader_id, at, kind, text, order_id`);
    if (!row) throw notFound(`id: no notification ${id}`);
    return c.json({ ...row, id: Number(row.id), at: row.at.toISOString(), read: true });
  });
  return app;
}
