// The orders API: POST/GET /v1/orders, GET /v1/orders/{id}, POST /v1/orders/{id}/cancel, PATCH /v1/orders/{id}.
import { Hono } from 'hono';
import { z } from 'zod';
import { canSeeDesk } from '../auth/users';
import { sql } from '../db';
import type { AppDeps, AppEnv } from '../http/context';
import { ApiError, badRequest, conflict, forbidden, notFound } from '../http/errors';
import { ErrorResponse } from '../http/openapi';
import { parseBody, parseQuery, readJson } from '../http/validate';
import { dayBounds } from '../time/market-time';
import { actingFor, decodeCursor, encodeCursor, readingFor } from './access';
import { orderColumns, type OrderRow } from './model';
import { OrderId, OrderQuery, OrderSchema, PlaceOrder, ReplaceOrder } from './schema';
import { InsufficientError, OrderInputError, OrderNotFoundError, OrderStateError, type Trading } from './trading';

/** Trading errors as API errors: 400 a field, 404, 409 the order's state, 422 not enough cash or quantity. */
export function tradingError(error: unknown): never {
  if (error instanceof OrderInputError) throw badRequest(error.message);
  if (error instanceof OrderNotFoundError) throw notFound(error.message);
  if (error instanceof OrderStateError) throw conflict(error.message);
  if (error instanceof InsufficientError) throw new ApiError(422, error.message);
  throw error;
}

export function ordersRoutes(deps: AppDeps): Hono<AppEnv> {
  const trading = deps.trading as Trading;
  const { openapi, db, tz } = deps;
  const app = new Hono<AppEnv>();
  const errors = {
    400: { description: 'Invalid request: the message names the field', schema: ErrorResponse },
    403: { description: 'Another trader\'s order, or a role that may not place orders', schema: ErrorResponse },
  };

  openapi.add({
    method: 'post', path: '/v1/orders', tag: 'orders', summary: 'Place a buy or sell order (limit or market) on a delivery product',
    description: 'The order, its hold (a buy: limit price × energy, a market buy: the price cap × energy; a sell: its MW against the long position plus the short limit) and its message to the exchange are written in one transaction. Repeating a client_order_id with the same content returns the existing order (200); other content is 409.',
    body: { schema: PlaceOrder },
    responses: {
      201: { description: 'Placed (pending_new until the exchange acknowledges it)', schema: OrderSchema },
      200: { description: 'The existing order of this client_order_id (same content)', schema: OrderSchema },
      ...errors,
      409: { description: 'The client_order_id is taken by an order with other content', schema: ErrorResponse },
      422: { description: 'Not enough available cash (buy) or sellable quantity (sell): says what was needed and what is available', schema: ErrorResponse },
    },
  });
  app.post('/', async (c) => {
    const input = parseBody(await readJson(c), PlaceOrder);
    const traderId = actingFor(c.get('user'), input.trader_id);
    const result = await trading.place({ ...input, trader_id: traderId }).catch(tradingError);
    return c.json(result.order, result.created ? 201 : 200);
  });

  openapi.add({
    method: 'get', path: '/v1/orders', tag: 'orders', summary: 'Orders, newest first',
    description: 'Traders see only their own. status=open: pending_new, new, partially_filled, pending_cancel, pending_replace; closed: filled, canceled, rejected, expired.',
    query: OrderQuery,
    responses: { 200: { description: 'A page of orders; next_cursor (null on the last page) asks for the next', schema: z.object({ orders: z.array(OrderSchema), next_cursor: z.string().nullable() }) }, ...errors },
  });
  app.get('/', async (c) => {
    const q = parseQuery(c, OrderQuery);
    const traderId = readingFor(c.get('user'), q.trader_id);
    const where = [sql`TRUE`];
    if (traderId !== undefined) where.push(sql`trader_id = ${traderId}`);
    if (q.status === 'open') where.push(sql`status IN ('pending_new', 'new', 'partially_filled', 'pending_cancel', 'pending_replace')`);
    if (q.status === 'closed') where.push(sql`status IN ('filled', 'canceled', 'rejected', 'expired')`);
    if (q.delivery_day) {
      const b = dayBounds(q.delivery_day, tz);
      where.push(sql`delivery_start >= ${b.start} AND delivery_start < ${b.end}`);
    }
    if (q.client_order_id) where.push(sql`client_order_id = ${q.client_order_id}`);
    const after = decodeCursor(q.cursor, 2);
    if (after) {
      const at = new Date(Number(after[0]));
      if (Number.isNaN(at.getTime()) || !/^[0-9a-f-]{36}$/.test(after[1]!)) throw badRequest('cursor: not a next_cursor of this list');
      where.push(sql`(created_at, id) < (${at}::timestamptz, ${after[1]}::uuid)`);
    }
    const rows = await db.query<OrderRow>(sql`SELECT ${sql([orderColumns] as unknown as TemplateStringsArray)} FROM orders WHERE ${sql.join(where, sql` AND `)} ORDER BY created_at DESC, id DESC LIMIT ${q.limit}`);
    const last = rows[rows.length - 1];
    return c.json({ orders: await trading.withFills(db, rows), next_cursor: rows.length === q.limit && last ? encodeCursor([last.created_at.getTime(), last.id]) : null });
  });

  const mine = (c: { get(k: 'user'): import('../auth/users').User }) => (o: { trader_id: string }) => {
    const user = c.get('user');
    if (!canSeeDesk(user) && o.trader_id !== user.trader_id) throw new OrderNotFoundError('id: no such order of yours');
  };

  openapi.add({
    method: 'get', path: '/v1/orders/{id}', tag: 'orders', summary: 'One order with its fills', params: OrderId,
    responses: { 200: { description: 'The order', schema: OrderSchema }, 404: { description: 'No such order (or not yours)', schema: ErrorResponse } },
  });
  app.get('/:id', async (c) => {
    const order = await trading.get(db, c.req.param('id'));
    if (!order) throw notFound(`id: no order ${c.req.param('id')}`);
    try { mine(c)(order); } catch (e) { tradingError(e); }
    return c.json(order);
  });

  const writer = (c: { get(k: 'user'): import('../auth/users').User }) => (o: { trader_id: string }) => {
    mine(c)(o);
    const user = c.get('user');
    if (user.role === 'analyst') throw forbidden('role analyst may read but not change orders');
  };

  openapi.add({
    method: 'post', path: '/v1/orders/{id}/cancel', tag: 'orders', summary: 'Ask the exchange to cancel an open order', params: OrderId,
    description: 'The order is pending_cancel until the exchange answers (canceled, or cancel_rejected back to its status); its hold is released when it is canceled.',
    responses: { 202: { description: 'pending_cancel', schema: OrderSchema }, 403: errors[403], 404: { description: 'No such order', schema: ErrorResponse }, 409: { description: 'The order is already final', schema: ErrorResponse } },
  });
  app.post('/:id/cancel', async (c) => {
    const order = await trading.cancel(c.req.param('id'), writer(c)).catch(tradingError);
    return c.json(order, 202);
  });

  openapi.add({
    method: 'patch', path: '/v1/orders/{id}', tag: 'orders', summary: 'Ask the exchange to change an open order\'s quantity and/or limit price', params: OrderId,
    description: 'The order is pending_replace until the exchange answers; meanwhile it holds the larger of the old and the new order, afterwards the new one (replaced) or the old one (replace_rejected). The quantity is the order\'s total, more than what is already filled.',
    body: { schema: ReplaceOrder },
    responses: {
      202: { description: 'pending_replace', schema: OrderSchema }, 400: errors[400], 403: errors[403], 404: { description: 'No such order', schema: ErrorResponse },
      409: { description: 'The order is final or waits for another answer of the exchange', schema: ErrorResponse }, 422: { description: 'Not enough cash or quantity for the larger hold', schema: ErrorResponse },
    },
  });
  app.patch('/:id', async (c) => {
    const changes = parseBody(await readJson(c), ReplaceOrder);
    const order = await trading.replace(c.req.param('id'), changes, writer(c)).catch(tradingError);
    return c.json(order, 202);
  });

  return app;
}
