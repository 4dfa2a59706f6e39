// Group commit of placements on the embedded database through the real app and a fake exchange
// over the real websocket: concurrent placements of several traders land in few groups and are
// decided in arrival order against the cash there is; duplicates of one client_order_id inside a
// group; a group whose transaction fails places its members one by one; sells against the long
// position plus the short limit inside one group; the pre-claimed order_new messages reach the
// exchange once each.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../server/db';
import type { Trading } from '../server/orders';
import { linkedEnv, startFakeExchange, type FakeExchange } from './helpers/fake-exchange-orders';
import { jsonOf, startTestServer, type TestServer } from './helpers/server';
import { until } from './helpers/wait';

const now = new Date('2026-12-01T12:00:00Z');
const day = '2026-12-02';
let server: TestServer;
let exchange: FakeExchange;
let trading: Trading;
let n = 0;
const nextTrader = () => `grp${++n}_${Math.random().toString(36).slice(2, 6)}`;

beforeAll(async () => {
  exchange = await startFakeExchange();
  server = await startTestServer({ clock: { now: () => now }, env: linkedEnv(exchange.url) });
  trading = server.deps.trading as Trading;
  await until(() => server.gateway?.connected, 'gateway connected');
}, 60_000);
afterAll(async () => {
  await server?.close();
  await exchange?.close();
});

async function fund(traderId: string, amount: string) {
  expect((await server.request(`/v1/accounts/${traderId}/cash`, { method: 'POST', json: { amount } })).status).toBe(200);
}

const buy = (traderId: string, quantity: number, price: number, extra: Record<string, unknown> = {}) => ({
  trader_id: traderId, side: 'buy' as const, type: 'limit' as const, time_in_force: 'gtc' as const, delivery_day: day, delivery_hour: 9, quantity, limit_price: price, ...extra,
});

/** The ledger's sums equal the account; held equals the open orders' holds. */
async function assertLedger(traderId: string) {
  const db = server.deps.db;
  const [sums] = await db.query<{ a: string; h: string }>(sql`SELECT coalesce(sum(amount), 0) AS a, coalesce(sum(held_amount), 0) AS h FROM ledger WHERE trader_id = ${traderId}`);
  const [acc] = await db.query<{ available: string; held: string }>(sql`SELECT available, held FROM accounts WHERE trader_id = ${traderId}`);
  const [holds] = await db.query<{ h: string }>(sql`SELECT coalesce(sum(held), 0) AS h FROM orders WHERE trader_id = ${traderId}`);
  expect(Number(sums!.a).toFixed(2)).toBe(acc!.available);
  expect(Number(sums!.h).toFixed(2)).toBe(acc!.held);
  expect(Number(holds!.h).toFixed(2)).toBe(acc!.held);
}

/** One placement that occupies the committer, so that the calls after it in this tick form one group together. */
async function inOneGroup<T>(opener: string, calls: (() => Promise<T>)[]): Promise<{ results: PromiseSettledResult<T>[]; groups: number }> {
  await fund(opener, '100.00');
  const before = trading.placements.stats.groups;
  const first = trading.place(buy(opener, 0.1, 100));
  const results = await Promise.allSettled(calls.map((c) => c()));
  await first;
  return { results, groups: trading.placements.stats.groups - before };
}

describe('group commit of placements', () => {
  it('many concurrent placements of several traders land in few groups, each decided in arrival order against the cash left', async () => {
    const traders = [nextTrader(), nextTrader(), nextTrader(), nextTrader()];
    for (const t of traders) await fund(t, '500.00');
    // 240 buys worth about three times the cash: 60 per trader, 0.1-3.0 MW at 10-60 EUR/MWh.
    const bodies = Array.from({ length: 240 }, (_, i) => buy(traders[i % 4]!, ((i * 7) % 30 + 1) / 10, 1000 + ((i * 13) % 51) * 100, { delivery_hour: 8 + (i % 3) }));
    const before = { ...trading.placements.stats };
    const results = await Promise.all(bodies.map(async (body) => {
      const res = await server.request('/v1/orders', { method: 'POST', json: body });
      return { body, status: res.status, json: await jsonOf(res) };
    }));
    const stats = trading.placements.stats;
    const placements = stats.placements - before.placements;
    const groups = stats.groups - before.groups;
    expect(placements).toBe(240);
    // The client shares this thread with the server, so fewer requests queue up than with a
    // client process of its own (bench:orders), yet groups form.
    expect(groups).toBeLessThan(placements);
    expect(stats.largest).toBeGreaterThan(1);
    expect(stats.fallbacks).toBe(before.fallbacks);
    expect(results.every((r) => r.status === 201 || r.status === 422), JSON.stringify(results.find((r) => r.status !== 201 && r.status !== 422)?.json)).toBe(true);

    const db = server.deps.db;
    for (const t of traders) {
      const mine = results.filter((r) => r.body.trader_id === t);
      const accepted = mine.filter((r) => r.status === 201);
      const refused = mine.filter((r) => r.status === 422);
      expect(accepted.length).toBeGreaterThan(0);
      expect(refused.length).toBeGreaterThan(0);
      const held = accepted.reduce((sum, r) => sum + Math.round(Number(r.json.held) * 100), 0);
      expect(held).toBeLessThanOrEqual(50_000);
      const balance = await jsonOf(await server.request(`/v1/balance?trader_id=${t}`));
      expect(Math.round(Number(balance.held) * 100)).toBe(held);
      expect(Math.round(Number(balance.available) * 100)).toBe(50_000 - held);
      // The holds in arrival order: what was left after each. A refused order saw one of these
      // (its turn came between two accepted ones) and needed more than that.
      const entries = await db.query<{ available_after: string }>(sql`SELECT available_after FROM ledger WHERE trader_id = ${t} AND kind = 'hold' ORDER BY id`);
      expect(entries).toHaveLength(accepted.filter((r) => Number(r.json.held) > 0).length);
      const left = new Set(['500.00', ...entries.map((e) => e.available_after)]);
      for (const r of refused) {
        const [, needed, available] = /^insufficient cash: this order needs ([\d.]+) EUR held, ([\d.]+) EUR is available$/.exec(r.json.message)!;
        expect(left, `${r.json.message} (left after each hold: ${[...left].join(', ')})`).toContain(available);
        expect(Number(needed)).toBeGreaterThan(Number(available));
      }
      await assertLedger(t);
    }
    // Every accepted order reaches the exchange once (its order_new claimed at insert) and is acknowledged.
    const accepted = results.filter((r) => r.status === 201);
    await until(() => accepted.every((r) => exchange.orders.get(r.json.id)?.status === 'new'), 'every order at the exchange', 30_000);
    for (const r of accepted) expect(exchange.newCount(r.json.id)).toBe(1);
    await until(async () => (await db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM orders WHERE id = ANY(${accepted.map((r) => r.json.id)}::uuid[]) AND status = 'new'`))[0]!.n === accepted.length, 'acknowledgements applied', 30_000);
    const [unsent] = await db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM outbox WHERE order_id = ANY(${accepted.map((r) => r.json.id)}::uuid[]) AND sent_at IS NULL`);
    expect(unsent!.n).toBe(0);
  }, 120_000);

  it('duplicates of one client_order_id inside one group: one 201, the same content 200, other content 409', async () => {
    const t = nextTrader();
    await fund(t, '1000.00');
    const same = buy(t, 1, 5000, { client_order_id: 'dup-1' });
    const other = buy(t, 2, 5000, { client_order_id: 'dup-1' });
    const fallbacks = trading.placements.stats.fallbacks;
    const { results, groups } = await inOneGroup(nextTrader(), [() => trading.place(same), () => trading.place(same), () => trading.place(other), () => trading.place(same)]);
    expect(groups).toBe(2); // the opener alone, then the four together
    expect(trading.placements.stats.fallbacks).toBe(fallbacks); // decided in the group, not by the unique key failing it
    const [first, ...rest] = results;
    expect(first).toMatchObject({ status: 'fulfilled', value: { created: true } });
    const id = (first as PromiseFulfilledResult<{ order: { id: string } }>).value.order.id;
    expect(rest[0]).toMatchObject({ status: 'fulfilled', value: { created: false, order: { id } } });
    expect(rest[1]).toMatchObject({ status: 'rejected', reason: { message: `client_order_id: dup-1 is already the id of order ${id} with other content; use a new client_order_id` } });
    expect(rest[2]).toMatchObject({ status: 'fulfilled', value: { created: false, order: { id } } });
    expect(await jsonOf(await server.request(`/v1/balance?trader_id=${t}`))).toMatchObject({ held: '50.00', available: '950.00' });

    // Through the API, later: 200 with the stored order, 409 for other content.
    const again = await server.request('/v1/orders', { method: 'POST', json: same });
    expect(again.status).toBe(200);
    expect((await jsonOf(again)).id).toBe(id);
    expect((await server.request('/v1/orders', { method: 'POST', json: other })).status).toBe(409);
    // And repeated inside a group again, against the stored order.
    const later = await inOneGroup(nextTrader(), [() => trading.place(same), () => trading.place(other)]);
    expect(later.results[0]).toMatchObject({ status: 'fulfilled', value: { created: false, order: { id } } });
    expect(later.results[1]).toMatchObject({ status: 'rejected', reason: { message: expect.stringContaining(`already the id of order ${id}`) } });
    const [count] = await server.deps.db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM orders WHERE trader_id = ${t}`);
    expect(count!.n).toBe(1);
    await assertLedger(t);
  }, 60_000);

  it('a group whose transaction fails places its members one by one: only the bad one fails', async () => {
    const t = nextTrader();
    await fund(t, '1000.00');
    const db = server.deps.db;
    await db.execScript(`
      CREATE FUNCTION test_refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.client_order_id = 'refuse-me' THEN RAISE EXCEPTION 'refused by the test trigger'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER test_refuse_marked BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION test_refuse_marked();`);
    try {
      const fallbacks = trading.placements.stats.fallbacks;
      const { results, groups } = await inOneGroup(nextTrader(), [
        () => trading.place(buy(t, 1, 5000)),
        () => trading.place(buy(t, 2, 5000)),
        () => trading.place(buy(t, 1, 1000, { client_order_id: 'refuse-me' })),
        () => trading.place(buy(t, 3, 5000)),
      ]);
      expect(groups).toBe(2);
      expect(trading.placements.stats.fallbacks).toBe(fallbacks + 1);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
      expect((results[2] as PromiseRejectedResult).reason.message).toContain('refused by the test trigger');
      expect(await jsonOf(await server.request(`/v1/balance?trader_id=${t}`))).toMatchObject({ held: '300.00', available: '700.00' });
      const [count] = await db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM orders WHERE trader_id = ${t}`);
      expect(count!.n).toBe(3);
      await assertLedger(t);
    } finally {
      await db.execScript('DROP TRIGGER test_refuse_marked ON orders; DROP FUNCTION test_refuse_marked();');
    }
  }, 60_000);

  it('a listener that throws after a group committed keeps no caller waiting, and the group still reaches the exchange', async () => {
    const t = nextTrader();
    await fund(t, '1000.00');
    let armed = true;
    let thrown = 0;
    trading.onEvents(() => {
      if (!armed) return;
      thrown++;
      throw new Error('a listener broke');
    });
    try {
      const { results, groups } = await inOneGroup(nextTrader(), Array.from({ length: 5 }, () => () => trading.place(buy(t, 1, 1000))));
      expect(groups).toBe(2); // the opener's, then the five together
      expect(thrown).toBe(3); // the opener's deposit, its placement, the group of five
      const placed = results.map((r) => (r.status === 'fulfilled' ? r.value : r.reason));
      expect(placed.map((p) => (p as { created?: boolean }).created)).toEqual([true, true, true, true, true]);
      const ids = placed.map((p) => (p as { order: { id: string } }).order.id);
      await until(() => ids.every((id) => exchange.orders.get(id)?.status === 'new'), 'the five orders at the exchange', 30_000);
      for (const id of ids) expect(exchange.newCount(id)).toBe(1);
    } finally {
      armed = false;
    }
    await assertLedger(t);
  }, 60_000);

  it('sells inside one group against the long position plus the short limit, minus what open sells hold', async () => {
    const t = nextTrader();
    await fund(t, '10.00');
    const long = { id: `${t}-long`, price: 3000, quantity: 2, direction: 'buy', delivery_day: day, delivery_hour: 11, trader_id: t, execution_time: '2026-12-01T10:00:00Z' };
    expect((await server.request('/v1/trades', { method: 'POST', json: long })).status).toBe(200);
    expect((await server.request(`/v1/accounts/${t}`, { method: 'PATCH', json: { short_limit_mw: 1 } })).status).toBe(200);
    const sell = { trader_id: t, side: 'sell' as const, type: 'limit' as const, time_in_force: 'gtc' as const, delivery_day: day, delivery_hour: 11, quantity: 0.5, limit_price: 4000 };
    const { results, groups } = await inOneGroup(nextTrader(), Array.from({ length: 8 }, () => () => trading.place(sell)));
    expect(groups).toBe(2);
    // 2 MW long + 1 MW short limit: six sells of 0.5 MW, in arrival order; the last two are refused.
    expect(results.map((r) => r.status)).toEqual([...Array(6).fill('fulfilled'), 'rejected', 'rejected']);
    for (const r of results.slice(6)) {
      expect((r as PromiseRejectedResult).reason.message).toBe('insufficient quantity: this order needs 0.5 MW to sell, 0 MW is available (long 2 MW + short limit 1 MW − 3 MW held by open sells)');
    }
    const [held] = await server.deps.db.query<{ held_mw: string; sellable_mw: string }>(sql`SELECT held_mw, sellable_mw FROM sell_holds WHERE trader_id = ${t}`);
    expect(Number(held!.held_mw)).toBe(3);
    expect(Number(held!.sellable_mw)).toBe(3);
    // One more alone is refused too, saying the same.
    const alone = await server.request('/v1/orders', { method: 'POST', json: sell });
    expect(alone.status).toBe(422);
    expect((await jsonOf(alone)).message).toContain('0 MW is available (long 2 MW + short limit 1 MW − 3 MW held by open sells)');
    expect(await jsonOf(await server.request(`/v1/balance?trader_id=${t}`))).toMatchObject({ held: '0.00', available: '10.00' });
  }, 60_000);
});
