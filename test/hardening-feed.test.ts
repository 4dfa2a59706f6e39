// The exchange feed against deals it cannot store, a database that refuses or fails, and deal ids
// that a trader used first: through the real gateway, the exchange simulator over the websocket,
// and the real HTTP app on the embedded database.
import { describe, expect, it } from 'vitest';
import { addUser } from '../server/auth/users';
import { sql, type Db } from '../server/db';
import { feedReadiness, type FeedGateway } from '../server/feed';
import type { GatewayOptions } from '../server/feed/gateway';
import { connected, exchangeHarness, withTransaction } from './helpers/exchange';
import { basic, jsonOf, trade } from './helpers/server';
import { until } from './helpers/wait';

const fast = { heartbeatMs: 100, backoffMinMs: 20, backoffMaxMs: 200, batchMs: 5 } satisfies Partial<GatewayOptions>;
const h = exchangeHarness(fast, () => ({ idPrefix: `hf${Math.random().toString(36).slice(2, 8)}` }));
const { sim, gateway } = h;

const done = (g: FeedGateway) => g.counts.stored + g.counts.duplicates + g.counts.conflicts + g.counts.dead_lettered;
const deal = (id: string, trader: string, overrides: Record<string, unknown> = {}) => ({
  id, price: 20.5, quantity: 2, direction: 'buy' as const, delivery_day: '2023-02-06', delivery_hour: '08-09', trader_id: trader, execution_time: '2023-02-06T06:13:45Z', ...overrides,
});
const deadLetters = (g: FeedGateway) => h.server.deps.db.query<{ reason: string; raw: string }>(sql`SELECT reason, raw FROM feed_dead_letters WHERE gateway_id = ${g.gatewayId} ORDER BY id`);

describe('a deal the database cannot store', () => {
  it('dead-letters deals with instants or dates that cannot be stored or do not exist, and stores every other deal', async () => {
    const s = await sim();
    const g = await gateway(s.url);
    await connected(g);
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ execution_time: '0000-01-01T00:00:00Z' }, /execution_time: is outside the years 0001 to 9999/],
      [{ execution_time: '9999-12-31T23:59:59-23:59' }, /execution_time: is outside the years 0001 to 9999/],
      [{ execution_time: '2023-02-30T10:00:00Z' }, /execution_time: 2023-02-30 is not a calendar date/],
      [{ execution_time: '2023-02-06T24:00:00Z' }, /execution_time: 24:00:00 is not a time of day/],
      [{ delivery_day: '1000-01-01' }, /delivery_day: must be a date from 1900-01-01/],
    ];
    const trader = `hf_bad_${h.member}`;
    s.sendDeal(deal(`${h.member}-ok-1`, trader));
    bad.forEach(([overrides], i) => s.sendDeal(deal(`${h.member}-bad-${i}`, trader, overrides)));
    s.sendDeal(deal(`${h.member}-ok-2`, trader));
    await until(() => done(g) === bad.length + 2, 'every deal handled');
    expect(g.counts).toMatchObject({ stored: 2, dead_lettered: bad.length });
    const letters = await deadLetters(g);
    expect(letters).toHaveLength(bad.length);
    bad.forEach(([, reason], i) => expect(letters[i]!.reason).toMatch(reason));
    // The feed goes on.
    s.sendDeal(deal(`${h.member}-ok-3`, trader));
    await until(() => g.counts.stored === 3, 'the next deal stored');
  });

  it('splits a batch the database refuses so that only the refused deals are dead letters, with the database\'s reason', async () => {
    const db = h.server.deps.db;
    const refused = `hf_refused_${h.member}`;
    const name = `test_refuse_${h.member}`;
    // The database's own rule, unknown to the gateway's validation.
    await db.execScript(`ALTER TABLE trades ADD CONSTRAINT ${name} CHECK (trader_id <> '${refused}')`, { transaction: false });
    h.cleanup.push(() => db.execScript(`ALTER TABLE trades DROP CONSTRAINT ${name}`, { transaction: false }));
    const s = await sim();
    const g = await gateway(s.url, { batchMs: 50, batchMax: 100 });
    await connected(g);
    const trader = `hf_split_${h.member}`;
    for (let i = 0; i < 40; i++) s.sendDeal(deal(`${h.member}-s-${i}`, i === 7 || i === 31 ? refused : trader));
    await until(() => done(g) === 40, 'every deal handled', 30_000);
    expect(g.counts).toMatchObject({ stored: 38, dead_lettered: 2 });
    const letters = await deadLetters(g);
    expect(letters.map((l) => (JSON.parse(l.raw) as { deal_confirmation: { id: string } }).deal_confirmation.id)).toEqual([`${h.member}-s-7`, `${h.member}-s-31`]);
    for (const l of letters) expect(l.reason).toMatch(new RegExp(`the database refused the deal .*${name}`));
    const [row] = await db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM trades WHERE trader_id = ${trader}`);
    expect(row!.n).toBe(38);
    const status = await jsonOf(await h.server.request('/v1/feed/status'));
    expect(status.store_failures).toEqual([]);
  });

  it('retries while the database is down, and /readyz and /v1/feed/status say so until it is back', async () => {
    const real = h.server.deps.db;
    let down = false;
    const flaky: Db = withTransaction(real, async (fn) => {
      if (down) throw Object.assign(new Error('connection terminated unexpectedly'), { code: 'ECONNRESET' });
      return real.transaction(fn);
    });
    const s = await sim();
    const g = await gateway(s.url, { db: flaky });
    const check = feedReadiness(g, s.url);
    h.server.deps.readiness.push(check);
    h.cleanup.push(async () => { h.server.deps.readiness.splice(h.server.deps.readiness.indexOf(check), 1); });
    await connected(g);
    down = true;
    const trader = `hf_down_${h.member}`;
    for (let i = 0; i < 5; i++) s.sendDeal(deal(`${h.member}-d-${i}`, trader));
    await until(() => (g.storeFailure?.attempts ?? 0) >= 2, 'retried attempts');
    const ready = await h.server.request('/readyz');
    expect(ready.status).toBe(503);
    expect((await jsonOf(ready)).problems.feed).toMatch(/^cannot store exchange messages since .* retrying\): connection terminated unexpectedly$/);
    const failing = await until(async () => {
      const status = await jsonOf(await h.server.request('/v1/feed/status'));
      return status.store_failures.find((f: { gateway_id: string }) => f.gateway_id === g.gatewayId);
    }, 'the feed status naming the failure');
    expect(failing.error).toBe('connection terminated unexpectedly');
    expect(g.counts.dead_lettered).toBe(0); // nothing is given up: a database that is down is not a bad deal
    down = false;
    await until(() => g.counts.stored === 5, 'every deal stored once the database is back');
    expect(g.storeFailure).toBeNull();
    await until(async () => (await h.server.request('/readyz')).status === 200, 'ready again');
    await until(async () => (await jsonOf(await h.server.request('/v1/feed/status'))).store_failures.length === 0, 'the failure cleared from the status');
  });
});

describe('a deal id a trader used first', () => {
  it('stores the exchange\'s deal for the exchange\'s trader, records the manual entry it superseded, and both PnLs follow', async () => {
    const db = h.server.deps.db;
    const squatter = `hf_sq_${h.member}`;
    const owner = `hf_own_${h.member}`;
    await addUser(db, { username: `sq_${h.member}`, password: 'squatter-password', role: 'trader', trader_id: squatter });
    const id = `${h.member}-next`;
    const day = '2023-02-08';
    const pnl = async (trader: string) => (await jsonOf(await h.server.request(`/v1/reports/pnl?trader_id=${trader}&delivery_day=${day}`))).total.pnl_eur as number;
    // The trader enters the id the exchange will use next, under her own trader_id: a sell of 10 MW at 50.00.
    const posted = await h.server.request('/v1/trades', { method: 'POST', json: trade({ id, trader_id: squatter, direction: 'sell', price: 5000, quantity: 10, delivery_day: day, delivery_hour: 9 }), auth: basic(`sq_${h.member}`, 'squatter-password') });
    expect(posted.status).toBe(200);
    expect(await pnl(squatter)).toBe(500);
    // The exchange confirms that id for another trader: a buy of 2 MW at 20.50.
    const s = await sim();
    const g = await gateway(s.url);
    await connected(g);
    s.sendDeal(deal(id, owner, { delivery_day: day, delivery_hour: '08-09', execution_time: '2023-02-08T06:00:00Z' }));
    await until(() => g.counts.stored === 1, 'the exchange\'s deal stored');
    expect(g.counts.conflicts).toBe(0);
    const listed = await jsonOf(await h.server.request(`/v1/trades?delivery_day=${day}`));
    expect(listed.filter((t: { id: string }) => t.id === id)).toEqual([
      { id, price: 2050, quantity: 2, direction: 'buy', delivery_day: day, delivery_hour: 8, trader_id: owner, execution_time: '2023-02-08T06:00:00Z' },
    ]);
    await until(async () => (await pnl(squatter)) === 0, 'the squatter\'s PnL without the superseded entry');
    expect(await pnl(owner)).toBe(-41);
    const superseded = await db.query<Record<string, unknown>>(sql`
      SELECT id, trader_id, direction, price, quantity, source, superseded_by, exchange_trader_id, differences, superseded_at IS NOT NULL AS dated
      FROM trades_superseded WHERE id = ${id}`);
    expect(superseded).toEqual([{
      id, trader_id: squatter, direction: 'sell', price: '50.00', quantity: '10.000000', source: 'api', superseded_by: 'feed', exchange_trader_id: owner,
      differences: ['trader_id', 'direction', 'price', 'quantity', 'delivery_hour', 'execution_time'], dated: true,
    }]);
    // The exchange repeating its deal is a duplicate now; the trader posting hers again learns only that the id is taken.
    s.sendDeal(deal(id, owner, { delivery_day: day, delivery_hour: '08-09', execution_time: '2023-02-08T06:00:00Z' }));
    await until(() => g.counts.duplicates === 1, 'the repeat counted as a duplicate');
    const again = await h.server.request('/v1/trades', { method: 'POST', json: trade({ id, trader_id: squatter, direction: 'sell', price: 5000, quantity: 10, delivery_day: day, delivery_hour: 9 }), auth: basic(`sq_${h.member}`, 'squatter-password') });
    expect(again.status).toBe(409);
    expect((await jsonOf(again)).message).toBe(`id: trade id ${id} is already taken by another trade`);
  });
});
