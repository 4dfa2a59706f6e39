// The orders and accounts API against the real server and a fake exchange over the real
// websocket: every rule of placement, holds, fills, cancel, replace, expiry and access.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../server/auth/users';
import { sql } from '../server/db';
import { basic, jsonOf, startTestServer, type TestServer } from './helpers/server';
import { linkedEnv, startFakeExchange, type FakeExchange, type FakeExchangeOptions } from './helpers/fake-exchange-orders';
import { until } from './helpers/wait';

let server: TestServer;
let exchange: FakeExchange;
/** The fake exchange reads these on every frame: tests change its behaviour. */
const behaviour: FakeExchangeOptions = {};
let now = new Date('2026-12-01T12:00:00Z');
const clock = { now: () => now };
const day = '2026-12-02';
const alice = { username: 'alice', password: 'alice-password-1', trader: 'alice_t' };
const aliceAuth = basic(alice.username, alice.password);
const analystAuth = basic('ana', 'analyst-password-1');
let n = 0;
const nextTrader = () => `tr${++n}_${Math.random().toString(36).slice(2, 6)}`;

beforeAll(async () => {
  exchange = await startFakeExchange(behaviour);
  server = await startTestServer({ clock, env: linkedEnv(exchange.url) });
  await addUser(server.deps.db, { username: alice.username, password: alice.password, role: 'trader', trader_id: alice.trader });
  await addUser(server.deps.db, { username: 'ana', password: 'analyst-password-1', role: 'analyst' });
  await until(() => server.gateway?.connected, 'gateway connected');
}, 60_000);
afterAll(async () => {
  await server?.close();
  await exchange?.close();
});

async function fund(traderId: string, amount: string) {
  const res = await server.request(`/v1/accounts/${traderId}/cash`, { method: 'POST', json: { amount, memo: 'funding' } });
  expect(res.status).toBe(200);
  return jsonOf(res);
}

const order = (traderId: string, overrides: Record<string, unknown> = {}) => ({
  trader_id: traderId, side: 'buy', type: 'limit', delivery_day: day, delivery_hour: 8, quantity: 10, limit_price: 5000, ...overrides,
});

async function place(body: Record<string, unknown>, auth?: string) {
  const res = await server.request('/v1/orders', { method: 'POST', json: body, auth });
  return { status: res.status, body: await jsonOf(res) };
}

async function balance(traderId: string) {
  return jsonOf(await server.request(`/v1/balance?trader_id=${traderId}`));
}

async function orderOf(id: string) {
  return jsonOf(await server.request(`/v1/orders/${id}`));
}

/** The ledger's sums equal the account, and held equals the open orders' holds. */
async function assertConsistent(traderId: string) {
  const db = server.deps.db;
  const [sums] = await db.query<{ a: string; h: string }>(sql`SELECT coalesce(sum(amount), 0) AS a, coalesce(sum(held_amount), 0) AS h FROM ledger WHERE trader_id = ${traderId}`);
  const [acc] = await db.query<{ available: string; held: string }>(sql`SELECT available, held FROM accounts WHERE trader_id = ${traderId}`);
  const [holds] = await db.query<{ h: string }>(sql`SELECT coalesce(sum(held), 0) AS h FROM orders WHERE trader_id = ${traderId}`);
  expect(Number(sums!.a)).toBeCloseTo(Number(acc!.available), 6);
  expect(Number(sums!.h)).toBeCloseTo(Number(acc!.held), 6);
  expect(Number(holds!.h)).toBeCloseTo(Number(acc!.held), 6);
}

describe('placement rules', () => {
  it('a limit buy holds limit x energy, goes pending_new -> new on the exchange ack, and writes one order_new', async () => {
    const t = nextTrader();
    await fund(t, '10000.00');
    const { status, body } = await place(order(t));
    expect(status).toBe(201);
    expect(body).toMatchObject({ status: 'pending_new', held: '500.00', quantity: 10, limit_price: 5000, delivery_period: '08-09', filled_quantity: 0, fills: [] });
    expect(await balance(t)).toMatchObject({ available: '9500.00', held: '500.00', total: '10000.00', currency: 'EUR' });
    await until(async () => (await orderOf(body.id)).status === 'new', 'the exchange ack');
    const acked = await orderOf(body.id);
    expect(acked).toMatchObject({ exchange_order_id: exchange.orders.get(body.id)!.exchange_order_id, held: '500.00', filled_quantity: 0, pending: null, fills: [] });
    expect(acked.exchange_order_id).toBeTruthy();
    expect(Date.parse(acked.updated_at)).toBeGreaterThanOrEqual(Date.parse(body.updated_at));
    expect(exchange.newCount(body.id)).toBe(1);
    expect(exchange.orders.get(body.id)).toMatchObject({ trader_id: t, side: 'buy', type: 'limit', delivery_day: day, delivery_hour: '08-09', quantity: 10, price: 50 });
    await assertConsistent(t);
  });

  it('a quarter-hour product holds a quarter of the hour\'s energy; a negative limit holds nothing; a market buy holds the price cap', async () => {
    const t = nextTrader();
    await fund(t, '100000.00');
    const q = await place(order(t, { delivery_period: '08:15-08:30', quantity: 2.5, limit_price: 4010 }));
    expect(q.status).toBe(201);
    expect(q.body.held).toBe('25.07'); // 40.10 x 2.5 MW x 0.25 h = 25.0625, rounded up to the cent
    expect(q.body.delivery_period).toBe('08:15-08:30');
    const neg = await place(order(t, { limit_price: -2000 }));
    expect(neg.status).toBe(201);
    expect(neg.body.held).toBe('0.00');
    const market = await place(order(t, { type: 'market', limit_price: undefined, quantity: 1 }));
    expect(market.status).toBe(201);
    expect(market.body.held).toBe('9999.00');
    expect(await balance(t)).toMatchObject({ held: '10024.07', available: '89975.93' });
    await assertConsistent(t);
  });

  it('refuses with 400 naming the field', async () => {
    const t = nextTrader();
    await fund(t, '1000.00');
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ quantity: 0.15 }, /^quantity: must be a positive multiple of 0\.1 MW/],
      [{ quantity: -1 }, /^quantity: must be a positive multiple of 0\.1 MW/],
      [{ limit_price: 1_000_000 }, /^limit_price: must be within -9999\.00 to 9999\.00 EUR\/MWh/],
      [{ limit_price: -999_901 }, /^limit_price: must be within/],
      [{ limit_price: 50.5 }, /^limit_price: must be an integer number of eurocent/],
      [{ limit_price: undefined }, /^limit_price: required for a limit order/],
      [{ type: 'market' }, /^limit_price: not allowed for a market order/],
      [{ side: 'hold' }, /^side: must be "buy" or "sell"/],
      [{ delivery_day: '2026-13-01' }, /^delivery_day: must be a calendar date/],
      [{ delivery_period: '09:15-09:30' }, /^delivery_hour: 8 does not match delivery_period/],
      [{ time_in_force: 'day' }, /^time_in_force: must be "gtc", "ioc" or "fok"/],
      [{ colour: 'red' }, /unknown field "colour"/],
    ];
    for (const [overrides, message] of cases) {
      const res = await place(order(t, overrides));
      expect(res.status, JSON.stringify(overrides)).toBe(400);
      expect(res.body.message, JSON.stringify(overrides)).toMatch(message);
    }
    expect(await balance(t)).toMatchObject({ available: '1000.00', held: '0.00' });
  });

  it('refuses a product past gate closure (5 minutes before delivery) and accepts it just before', async () => {
    const t = nextTrader();
    await fund(t, '1000.00');
    const saved = now;
    try {
      now = new Date('2026-12-02T06:54:59Z'); // 07:54:59 in Berlin; hour 08 closes at 07:55
      expect((await place(order(t, { quantity: 0.1 }))).status).toBe(201);
      now = new Date('2026-12-02T06:55:00Z');
      const res = await place(order(t, { quantity: 0.1 }));
      expect(res.status).toBe(400);
      expect(res.body.message).toMatch(/^delivery_hour: trading of this product closed at 2026-12-02 07:55 \(Europe\/Berlin\), 5 minutes before its delivery starts/);
    } finally {
      now = saved;
    }
  });

  it('422 when the cash is not there, saying needed and available; nothing is written', async () => {
    const t = nextTrader();
    await fund(t, '100.00');
    const res = await place(order(t));
    expect(res.status).toBe(422);
    expect(res.body.message).toBe('insufficient cash: this order needs 500.00 EUR held, 100.00 EUR is available');
    const orders = await jsonOf(await server.request(`/v1/orders?trader_id=${t}`));
    expect(orders.orders).toEqual([]);
    expect(await balance(t)).toMatchObject({ available: '100.00', held: '0.00' });
  });

  it('a sell holds MW against the long position plus the short limit, minus open sells', async () => {
    const t = nextTrader();
    const none = await place(order(t, { side: 'sell', quantity: 1 }));
    expect(none.status).toBe(422);
    expect(none.body.message).toMatch(/^insufficient quantity: this order needs 1 MW to sell, 0 MW is available/);
    // 3 MW long from a trade of any source
    const trade = { id: `${t}-long`, price: 4000, quantity: 3, direction: 'buy', delivery_day: day, delivery_hour: 8, trader_id: t, execution_time: '2026-12-01T10:00:00Z' };
    expect((await server.request('/v1/trades', { method: 'POST', json: trade })).status).toBe(200);
    expect((await place(order(t, { side: 'sell', quantity: 2 }))).body.held_quantity).toBe(2);
    const over = await place(order(t, { side: 'sell', quantity: 1.5 }));
    expect(over.status).toBe(422);
    expect(over.body.message).toMatch(/needs 1\.5 MW to sell, 1 MW is available \(long 3 MW \+ short limit 0 MW − 2 MW held/);
    expect((await server.request(`/v1/accounts/${t}`, { method: 'PATCH', json: { short_limit_mw: 5 } })).status).toBe(200);
    expect((await place(order(t, { side: 'sell', quantity: 1.5 }))).status).toBe(201);
    const positions = await jsonOf(await server.request(`/v1/positions?trader_id=${t}&delivery_day=${day}`));
    expect(positions).toEqual([expect.objectContaining({ delivery_period: '08-09', bought_mw: 3, sold_mw: 0, net_mw: 3, avg_buy_price: 4000, open_sell_mw: 3.5, open_buy_mw: 0 })]);
  });

  it('a repeated client_order_id: same content 200 with the same order, other content 409', async () => {
    const t = nextTrader();
    await fund(t, '10000.00');
    const first = await place(order(t, { client_order_id: 'abc-1' }));
    expect(first.status).toBe(201);
    const again = await place(order(t, { client_order_id: 'abc-1' }));
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const other = await place(order(t, { client_order_id: 'abc-1', quantity: 11 }));
    expect(other.status).toBe(409);
    expect(other.body.message).toMatch(/^client_order_id: abc-1 is already the id of order/);
    expect(await balance(t)).toMatchObject({ held: '500.00' });
    const listed = await jsonOf(await server.request(`/v1/orders?trader_id=${t}&client_order_id=abc-1`));
    expect(listed.orders).toHaveLength(1);
  });
});

describe('fills, cancel, replace, expiry', () => {
  it('a partial fill releases its hold and debits the real cost; the fill becomes one trade; cancel releases the rest', async () => {
    const t = nextTrader();
    await fund(t, '1000.00');
    const { body } = await place(order(t));
    await until(async () => (await orderOf(body.id)).status === 'new', 'ack');
    exchange.fill(body.id, 4, 48.5);
    const filled = await until(async () => { const o = await orderOf(body.id); return o.status === 'partially_filled' && o; }, 'partial fill');
    expect(filled).toMatchObject({ filled_quantity: 4, avg_fill_price: 4850, held: '300.00' });
    expect(filled.fills).toEqual([expect.objectContaining({ price: 4850, quantity: 4 })]);
    // 500 held; 4 MW filled: 200 released, 194 paid
    expect(await balance(t)).toMatchObject({ available: '506.00', held: '300.00', total: '806.00' });
    const trades = await jsonOf(await server.request(`/v1/trades?trader_id=${t}`));
    expect(trades).toEqual([expect.objectContaining({ id: filled.fills[0].trade_id, price: 4850, quantity: 4, direction: 'buy', delivery_hour: 8 })]);
    const cancel = await server.request(`/v1/orders/${body.id}/cancel`, { method: 'POST' });
    expect(cancel.status).toBe(202);
    expect((await jsonOf(cancel)).status).toBe('pending_cancel');
    await until(async () => (await orderOf(body.id)).status === 'canceled', 'canceled');
    expect(await balance(t)).toMatchObject({ available: '806.00', held: '0.00', total: '806.00' });
    const again = await server.request(`/v1/orders/${body.id}/cancel`, { method: 'POST' });
    expect(again.status).toBe(409);
    await assertConsistent(t);
    const ledger = await jsonOf(await server.request(`/v1/transactions?trader_id=${t}`));
    expect(ledger.transactions.map((e: { kind: string }) => e.kind)).toEqual(['release', 'fill_cost', 'release', 'hold', 'deposit']);
    expect(ledger.transactions[1]).toMatchObject({ amount: '-194.00', held_amount: '0.00', available_after: '506.00', trade_id: filled.fills[0].trade_id, order_id: body.id });
  });

  it('a deal confirmation that arrives before its execution report is still one trade, and the fill is booked once', async () => {
    const t = nextTrader();
    await fund(t, '1000.00');
    behaviour.dealFirst = true;
    try {
      const { body } = await place(order(t, { quantity: 2 }));
      await until(async () => (await orderOf(body.id)).status === 'new', 'ack');
      exchange.fill(body.id, 2, 50, `${t}-deal`);
      await until(async () => (await orderOf(body.id)).status === 'filled', 'filled');
      const rows = await server.deps.db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM trades WHERE id = ${`${t}-deal`}`);
      expect(rows[0]!.n).toBe(1);
      const fills = await server.deps.db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM order_fills WHERE deal_id = ${`${t}-deal`}`);
      expect(fills[0]!.n).toBe(1);
      expect(await balance(t)).toMatchObject({ available: '900.00', held: '0.00' });
      await assertConsistent(t);
    } finally {
      behaviour.dealFirst = false;
    }
  });

  it('modify: holds the larger of old and new while pending, then the new one; a refused modify goes back', async () => {
    const t = nextTrader();
    await fund(t, '2000.00');
    const { body } = await place(order(t)); // 500 held
    await until(async () => (await orderOf(body.id)).status === 'new', 'ack');
    const res = await server.request(`/v1/orders/${body.id}`, { method: 'PATCH', json: { quantity: 20, limit_price: 4000 } });
    expect(res.status).toBe(202);
    const pending = await jsonOf(res);
    // old 10 x 50 = 500, new 20 x 40 = 800: the larger is held while pending (the exchange answers quickly, so either is seen)
    expect(['pending_replace', 'new']).toContain(pending.status);
    await until(async () => { const o = await orderOf(body.id); return o.status === 'new' && o.quantity === 20; }, 'replaced');
    expect(await balance(t)).toMatchObject({ held: '800.00', available: '1200.00' });
    const tooMuch = await server.request(`/v1/orders/${body.id}`, { method: 'PATCH', json: { quantity: 100 } });
    expect(tooMuch.status).toBe(422);
    expect((await jsonOf(tooMuch)).message).toBe('insufficient cash: this order needs 3200.00 EUR held, 1200.00 EUR is available');
    behaviour.refuseReplace = () => 'too late';
    try {
      const refused = await server.request(`/v1/orders/${body.id}`, { method: 'PATCH', json: { limit_price: 6000 } });
      expect(refused.status).toBe(202);
      await until(async () => (await jsonOf(await server.request(`/v1/notifications?trader_id=${t}`))).notifications[0].kind === 'replace_rejected', 'replace_rejected');
      expect(await orderOf(body.id)).toMatchObject({ status: 'new', quantity: 20, limit_price: 4000, pending: null, held: '800.00' });
    } finally {
      behaviour.refuseReplace = undefined;
    }
    expect(await balance(t)).toMatchObject({ held: '800.00', available: '1200.00' });
    await assertConsistent(t);
  });

  it('expiry at gate closure releases the holds', async () => {
    const t = nextTrader();
    await fund(t, '1000.00');
    const { body } = await place(order(t, { delivery_hour: 9, quantity: 4 }));
    await until(async () => (await orderOf(body.id)).status === 'new', 'ack');
    const saved = now;
    try {
      now = new Date('2026-12-02T07:55:00Z'); // 08:55 Berlin: hour 09 closes
      await server.deps.trading!.expireDue();
      const o = await orderOf(body.id);
      expect(o).toMatchObject({ status: 'expired', held: '0.00' });
    } finally {
      now = saved;
    }
    expect(await balance(t)).toMatchObject({ available: '1000.00', held: '0.00' });
    const inbox = await jsonOf(await server.request(`/v1/notifications?trader_id=${t}`));
    expect(inbox.notifications.map((x: { kind: string }) => x.kind)).toEqual(['expired', 'placed', 'deposit']);
  });

  it('an exchange reject releases the hold and says why; an exchange expiry releases it too', async () => {
    const t = nextTrader();
    await fund(t, '1000.00');
    behaviour.reject = () => 'price outside the band';
    let rejected: { id: string } = { id: "" };
    try {
      rejected = (await place(order(t, { quantity: 1 }))).body;
      await until(async () => (await orderOf(rejected.id)).status === 'rejected', 'rejected');
    } finally {
      behaviour.reject = undefined;
    }
    expect(await orderOf(rejected.id)).toMatchObject({ reject_reason: 'price outside the band', held: '0.00' });
    const inbox = await jsonOf(await server.request(`/v1/notifications?trader_id=${t}&unread=true`));
    expect(inbox.notifications[0]).toMatchObject({ kind: 'rejected', order_id: rejected.id, text: `Buy 1 MW ${day} 08-09 at 50.00 EUR/MWh rejected: price outside the band`, read: false });
    const read = await server.request(`/v1/notifications/${inbox.notifications[0].id}/read`, { method: 'POST' });
    expect((await jsonOf(read)).read).toBe(true);
    expect((await jsonOf(await server.request(`/v1/notifications?trader_id=${t}&unread=true`))).unread).toBe(inbox.unread - 1);
    const { body } = await place(order(t, { quantity: 1 }));
    await until(async () => (await orderOf(body.id)).status === 'new', 'ack');
    exchange.expire(body.id);
    await until(async () => (await orderOf(body.id)).status === 'expired', 'expired by the exchange');
    expect(await balance(t)).toMatchObject({ available: '1000.00', held: '0.00' });
    await assertConsistent(t);
  });
});

describe('access', () => {
  it('traders act only for themselves, analysts read and place nothing, admin acts for anyone', async () => {
    await fund(alice.trader, '1000.00');
    const own = await place(order(alice.trader, { trader_id: undefined, quantity: 1 }), aliceAuth);
    expect(own.status).toBe(201);
    expect(own.body.trader_id).toBe(alice.trader);
    const other = await place(order('someone_else'), aliceAuth);
    expect(other.status).toBe(403);
    expect((await server.request('/v1/balance?trader_id=someone_else', { auth: aliceAuth })).status).toBe(403);
    expect((await server.request('/v1/balance', { auth: aliceAuth })).status).toBe(200);
    const analyst = await place(order(alice.trader), analystAuth);
    expect(analyst.status).toBe(403);
    expect(analyst.body.message).toBe('role analyst may read but not place orders');
    expect((await server.request(`/v1/orders/${own.body.id}/cancel`, { method: 'POST', auth: analystAuth })).status).toBe(403);
    expect((await server.request(`/v1/orders/${own.body.id}`, { auth: analystAuth })).status).toBe(200);
    expect((await server.request(`/v1/accounts/${alice.trader}/cash`, { method: 'POST', json: { amount: '5' }, auth: aliceAuth })).status).toBe(403);
    const withdraw = await server.request(`/v1/accounts/${alice.trader}/cash`, { method: 'POST', json: { amount: '-5000' } });
    expect(withdraw.status).toBe(422);
    expect((await jsonOf(withdraw)).message).toMatch(/^amount: a withdrawal of 5000.00 EUR needs that much available cash; 9\d\d\.\d\d EUR is available/);
    const bad = await server.request(`/v1/accounts/${alice.trader}/cash`, { method: 'POST', json: { amount: '1.234' } });
    expect(bad.status).toBe(400);
    expect((await jsonOf(bad)).message).toMatch(/^amount: must be a non-zero amount in EUR with at most 2 decimals/);
  });

  it('every route is in the OpenAPI document', async () => {
    const doc = await jsonOf(await server.request('/v1/openapi.json'));
    for (const path of ['/v1/orders', '/v1/orders/{id}', '/v1/orders/{id}/cancel', '/v1/accounts/{trader_id}/cash', '/v1/balance', '/v1/positions', '/v1/portfolio', '/v1/transactions', '/v1/notifications', '/v1/notifications/{id}/read']) {
      expect(doc.paths[path], path).toBeDefined();
    }
    expect(doc.paths['/v1/orders/{id}'].patch).toBeDefined();
  });
});
