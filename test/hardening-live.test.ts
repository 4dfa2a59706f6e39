// The live hub and reports under abuse and load, over real Socket.IO connections and the real
// HTTP app: one report computation for many readers (and still exact), the leading edge of PnL
// rounds, the subscribe rate limit against a flood, cross-site handshakes, sign-out and disabling
// ending streams, the sockets gauge and the subscription cap.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io as connect, type Socket } from 'socket.io-client';
import { addUser, disableUser } from '../server/auth/users';
import { sql } from '../server/db';
import { channels, type ClientToServerEvents, type PnlReport, type PnlUpdate, type ServerToClientEvents, type SubscribeAck } from '../server/live/events';
import { maxSubscriptions, subscribeBurst } from '../server/live/hub';
import { ReportCache } from '../server/reports/cache';
import { pnlReport } from '../server/reports/pnl';
import { dayBounds } from '../server/time/market-time';
import { basic, jsonOf, startTestServer, trade, type TestServer } from './helpers/server';
import { until } from './helpers/wait';

type Client = Socket<ServerToClientEvents, ClientToServerEvents>;

let a: TestServer;
let b: TestServer;
const clients: Client[] = [];
const rita = basic('rita', 'rita-password');

beforeAll(async () => {
  a = await startTestServer();
  b = await startTestServer({ db: a.deps.db }); // a second server process on the same database
  await addUser(a.deps.db, { username: 'rita', password: 'rita-password', role: 'trader', trader_id: 'hl_rita' });
}, 60_000);
afterAll(async () => {
  for (const c of clients) c.close();
  await b?.close();
  await a?.close();
});

function client(server: TestServer, headers: Record<string, string>, options: Record<string, unknown> = {}): Client {
  const c: Client = connect(server.url, { extraHeaders: headers, transports: ['websocket'], reconnection: false, ...options });
  clients.push(c);
  return c;
}

async function connected(c: Client): Promise<Client> {
  if (c.connected) return c;
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('connect_error', (error) => reject(error));
  });
  return c;
}

function subscribe(c: Client, subscription: { trader_id: string; delivery_day: string }, ms = 30_000): Promise<SubscribeAck> {
  return c.timeout(ms).emitWithAck('subscribe', subscription);
}

async function post(server: TestServer, overrides: Record<string, unknown>, auth?: string) {
  const res = await server.request('/v1/trades', { method: 'POST', json: trade(overrides), auth });
  expect(res.status, await res.clone().text()).toBe(200);
  return res;
}

async function report(server: TestServer, traderId: string, day: string, auth?: string): Promise<PnlReport> {
  const res = await server.request(`/v1/reports/pnl?trader_id=${traderId}&delivery_day=${day}`, { auth });
  expect(res.status).toBe(200);
  return jsonOf(res);
}

describe('reports: one computation for many readers, exact per commit', () => {
  it('serves 50 concurrent readers of one trader-day from one computation', async () => {
    await post(a, { id: 'hl-c1', trader_id: 'hl_cache', delivery_day: '2031-05-05', delivery_hour: 9, price: 4000, quantity: 2, direction: 'sell' });
    const cache = a.deps.reports!;
    const before = { ...cache.stats };
    const reports = await Promise.all(Array.from({ length: 50 }, () => report(a, 'hl_cache', '2031-05-05')));
    // The test servers share one database, so a reader joins only a computation not yet sent: at
    // most one running and one waiting for all fifty.
    expect(cache.stats.computed - before.computed).toBeLessThanOrEqual(2);
    expect(cache.stats.hits + cache.stats.joined - before.hits - before.joined).toBeGreaterThanOrEqual(48);
    for (const r of reports) expect(r).toEqual(reports[0]);
    expect(reports[0]!.total.trades).toBe(1);
    expect(reports[0]!.hours[9]!.pnl_eur).toBe(80); // 2 MW x 1 h x 40 EUR/MWh sold
  });

  it('computes the reports of many traders read at once in rounds, one query a day, each exact', async () => {
    const day = '2031-05-12';
    const traders = Array.from({ length: 8 }, (_, i) => `hl_round_${i}`);
    for (const [i, trader] of traders.entries()) {
      await post(a, { id: `hl-round-${i}`, trader_id: trader, delivery_day: day, delivery_hour: i, price: 1000 + i, quantity: 1, direction: 'sell' });
    }
    const cache = new ReportCache(a.deps.db, 'Europe/Berlin');
    const reads = traders.flatMap((trader) => Array.from({ length: 5 }, () => cache.get(trader, day)));
    const reports = await Promise.all(reads);
    // Eight trader-days: the first reader's computation starts a round alone (its query sent, the
    // first trader's other readers need one of their own); everything else waits for the next
    // round, which does it all in one query.
    expect(cache.stats.computed).toBeLessThanOrEqual(traders.length + 1);
    expect(cache.stats.rounds).toBeLessThanOrEqual(2);
    for (const [i, trader] of traders.entries()) {
      const mine = reports.slice(i * 5, i * 5 + 5);
      for (const r of mine) expect(r).toEqual(await pnlReport(a.deps.db, trader, day, 'Europe/Berlin'));
      expect(mine[0]!.hours[i]!.pnl_eur).toBe(10 + i / 100);
    }
    await cache.close();
  });

  it('spaces rounds for readers by roundSpacingMs after a crowded round, not a lone reader\'s, while the live push of a change starts the next round at once, with every reader queued', async () => {
    const day = '2031-05-13';
    await post(a, { id: 'hl-space-1', trader_id: 'hl_space', delivery_day: day, delivery_hour: 9, price: 1000, quantity: 1, direction: 'buy' });
    const cache = new ReportCache(a.deps.db, 'Europe/Berlin', { singleProcess: true, roundSpacingMs: 600_000 });
    try {
      // After a quiet spell the first readers are served at once; a lone reader again at once.
      expect((await cache.get('hl_space', day)).total.trades).toBe(1);
      cache.invalidate('hl_space', day);
      expect((await cache.get('hl_space', day)).total.trades).toBe(1);
      expect(cache.stats.rounds).toBe(2);
      // A crowded round: two readers of the day.
      cache.invalidate('hl_space', day);
      const two = await Promise.all([cache.get('hl_space', day), cache.get('hl_space', day)]);
      expect(two.map((r) => r.total.trades)).toEqual([1, 1]);
      expect(cache.stats.rounds).toBe(3);
      await post(a, { id: 'hl-space-2', trader_id: 'hl_space', delivery_day: day, delivery_hour: 9, price: 1000, quantity: 1, direction: 'buy' });
      cache.invalidate('hl_space', day);
      // A reader right after that round waits for the spacing (ten minutes here): still waiting.
      let read: number | undefined;
      const reader = cache.get('hl_space', day).then((r) => { read = r.total.trades; return r; });
      await new Promise((r) => setTimeout(r, 300));
      expect(read).toBeUndefined();
      expect(cache.stats.rounds).toBe(3);
      // The hub's push of a change joins it and starts the round: both get the new trade.
      const pushed = await cache.get('hl_space', day, { urgent: true });
      expect(pushed.total.trades).toBe(2);
      expect((await reader).total.trades).toBe(2);
      expect(cache.stats.rounds).toBe(4);
    } finally {
      await cache.close();
    }
  });

  it('keeps finished reports only for a process alone on its database; otherwise every read after a write elsewhere includes it', async () => {
    const day = '2031-05-09';
    const db = a.deps.db;
    await post(a, { id: 'hl-sp1', trader_id: 'hl_single', delivery_day: day, delivery_hour: 7, price: 1000, quantity: 1, direction: 'buy' });
    const alone = new ReportCache(db, 'Europe/Berlin', { singleProcess: true });
    const shared = new ReportCache(db, 'Europe/Berlin');
    expect((await alone.get('hl_single', day)).total.trades).toBe(1);
    expect((await shared.get('hl_single', day)).total.trades).toBe(1);
    // A write this process is not told of (as from another process, before its NOTIFY is heard).
    await post(b, { id: 'hl-sp2', trader_id: 'hl_single', delivery_day: day, delivery_hour: 8, price: 1000, quantity: 1, direction: 'buy' });
    expect((await shared.get('hl_single', day)).total.trades).toBe(2);
    expect(shared.stats.hits).toBe(0);
    // Alone on its database, the kept report is served until a commit is announced to it.
    expect((await alone.get('hl_single', day)).total.trades).toBe(1);
    expect(alone.stats.hits).toBe(1);
    alone.invalidateRows([{ trader_id: 'hl_single', delivery_start: dayBounds(day, 'Europe/Berlin').start, delivery_day: day }]);
    expect((await alone.get('hl_single', day)).total.trades).toBe(2);
  });

  it('includes a commit in the next read on the writing process and, once it heard the NOTIFY, on another', async () => {
    const day = '2031-05-06';
    await post(a, { id: 'hl-x1', trader_id: 'hl_exact', delivery_day: day, delivery_hour: 10, price: 1000, quantity: 1, direction: 'buy' });
    expect((await report(a, 'hl_exact', day)).total.trades).toBe(1);
    expect((await report(b, 'hl_exact', day)).total.trades).toBe(1); // both caches now hold it
    for (let i = 2; i <= 6; i++) {
      await post(a, { id: `hl-x${i}`, trader_id: 'hl_exact', delivery_day: day, delivery_hour: 10, price: 1000, quantity: 1, direction: 'buy' });
      // Read-your-writes on the writer: the cache forgot the trader-day before the POST answered.
      expect((await report(a, 'hl_exact', day)).total.trades).toBe(i);
      await until(async () => (await report(b, 'hl_exact', day)).total.trades === i, `server b to show ${i} trades`, 30_000);
    }
    // Another trader's commit leaves this trader-day cached; its own is recomputed.
    const computed = a.deps.reports!.stats.computed;
    await post(a, { id: 'hl-x-other', trader_id: 'hl_other', delivery_day: day, delivery_hour: 10 });
    expect((await report(a, 'hl_exact', day)).total.trades).toBe(6);
    expect(a.deps.reports!.stats.computed).toBe(computed);
  });

  it('keeps a computation that waits for its turn shared across a commit, and it includes the commit', async () => {
    const day = '2031-05-09';
    await post(a, { id: 'hl-w1', trader_id: 'hl_wait', delivery_day: day, delivery_hour: 4 });
    const db = a.deps.db;
    const query = db.query.bind(db);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    let holding = false;
    // Another trader's report holds the one computation slot until released.
    db.query = (async (q: Parameters<typeof db.query>[0]) => {
      if (!holding && JSON.stringify(q).includes('hl_hold')) { holding = true; await gate; }
      return query(q);
    }) as typeof db.query;
    const cache = a.deps.reports!;
    try {
      const before = { ...cache.stats };
      const held = report(a, 'hl_hold', day);
      await until(() => holding, 'the held computation to send its query');
      const first = report(a, 'hl_wait', day); // waits for its turn
      await until(() => cache.stats.misses - before.misses === 2, 'the waiting reader to be queued');
      await post(a, { id: 'hl-w2', trader_id: 'hl_wait', delivery_day: day, delivery_hour: 4 }); // a commit while it waits
      const others = Array.from({ length: 9 }, () => report(a, 'hl_wait', day));
      await until(() => cache.stats.joined - before.joined === 9, 'nine more readers to join it');
      expect(cache.stats.misses - before.misses).toBe(2);
      release();
      const reports = await Promise.all([first, ...others]);
      await held;
      for (const r of reports) expect(r.total.trades).toBe(2);
      expect(cache.stats.computed - before.computed).toBe(2); // the held one and one for all ten readers
    } finally {
      db.query = query;
      release();
    }
  });

  it('drops cached reports of a day when a new reference price for it is stored', async () => {
    const day = '2031-05-07';
    await post(a, { id: 'hl-r1', trader_id: 'hl_ref', delivery_day: day, delivery_hour: 0, price: 5000, quantity: 1, direction: 'buy' });
    expect((await report(a, 'hl_ref', day)).hours[0]!.ref_price).toBeNull();
    const { start } = dayBounds(day, a.deps.tz);
    const end = new Date(start.getTime() + 3_600_000);
    // What the reference price poller does: store, then announce the day.
    await a.deps.db.query(sql`INSERT INTO reference_prices (delivery_start, delivery_end, delivery_day, value, unit, last_update) VALUES (${start}, ${end}, ${day}::date, 61.5, 'EUR/MWh', now())`);
    await a.deps.db.notify(channels.referencePricesStored, JSON.stringify([day]));
    await until(async () => (await report(a, 'hl_ref', day)).hours[0]!.ref_price === 61.5, 'the new reference price in the report', 30_000);
  });

  it('sends the pnl row of a lone trade at once (leading edge) and spaces the rounds of a burst', async () => {
    const day = '2031-05-08';
    const c = await connected(client(a, { Authorization: rita }));
    expect((await subscribe(c, { trader_id: 'hl_rita', delivery_day: day })).ok).toBe(true);
    const hub = a.hub;
    for (let i = 0; i < 3; i++) {
      // Quiet: the previous round is done, nothing arrived while it ran, and twice its cost has passed.
      await until(() => performance.now() >= hub.quietAt, 'a quiet spell after the last round');
      const row = new Promise<PnlUpdate>((resolve) => c.once('pnl', resolve));
      const rounds = hub.stats.rounds;
      const leading = hub.stats.leading;
      await post(a, { id: `hl-lone-${i}`, trader_id: 'hl_rita', delivery_day: day, delivery_hour: 12, price: 3000, quantity: 1 }, rita);
      const update = await row;
      expect(update.total.trades).toBe(i + 1);
      expect(hub.stats.rounds).toBe(rounds + 1);
      expect(hub.stats.leading).toBe(leading + 1); // no deliberate delay
      expect(hub.stats.lastWaitMs).toBe(0);
    }
    // A burst: changes that arrive while a round runs are coalesced into the next round, which is
    // not a leading edge (spaced by at least pnlIntervalMs from the start of the one before).
    // The first round's report is held until the burst is committed.
    const reports = a.deps.reports!;
    const get = reports.get.bind(reports);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    let held = false;
    reports.get = async (trader, d) => {
      if (trader === 'hl_rita' && d === day && !held) { held = true; await gate; }
      return get(trader, d);
    };
    try {
      const totals: number[] = [];
      const last = new Promise<void>((resolve) => {
        const onPnl = (u: PnlUpdate) => { totals.push(u.total.trades); if (u.total.trades === 3 + 20) { c.off('pnl', onPnl); resolve(); } };
        c.on('pnl', onPnl);
      });
      const roundsBefore = hub.stats.rounds;
      const leadingBefore = hub.stats.leading;
      await post(a, { id: 'hl-burst-0', trader_id: 'hl_rita', delivery_day: day, delivery_hour: 13, price: 3000, quantity: 1 }, rita);
      await until(() => held, 'the first round of the burst to ask for its report');
      for (let i = 1; i < 20; i++) await post(a, { id: `hl-burst-${i}`, trader_id: 'hl_rita', delivery_day: day, delivery_hour: 13, price: 3000, quantity: 1 }, rita);
      release();
      await last;
      expect(hub.stats.rounds - roundsBefore).toBe(2); // 20 commits, two rounds
      expect(hub.stats.leading - leadingBefore).toBe(1); // only the first at once
      expect(totals.at(-1)).toBe(23);
    } finally {
      reports.get = get;
      release();
    }
  }, 60_000);
});

describe('subscribe flood', () => {
  it('refuses subscribes beyond the rate with an error event naming the limit, and does not delay another client\'s deals', async () => {
    const day = '2031-06-01';
    const victim = await connected(client(a, { Authorization: rita }));
    expect((await a.request('/v1/reports/pnl?delivery_day=2031-06-01', { auth: rita })).status).toBe(200);
    expect((await subscribe(victim, { trader_id: 'hl_rita', delivery_day: day })).ok).toBe(true);
    const flooder = await connected(client(a, { Authorization: basic('admin', 'admin-password') }));
    const errors: { event: string; message: string }[] = [];
    flooder.on('error', (e) => errors.push(e));
    // The flood's reports are held until the victim's deal has arrived: if deals queued behind
    // subscribes (or their reports), it never would.
    const reports = a.deps.reports!;
    const get = reports.get.bind(reports);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    let held = 0;
    reports.get = async (trader, d, options) => {
      if (trader.startsWith('hl_flood_')) { held++; await gate; }
      return get(trader, d, options);
    };
    // Distinct trader-days, so no two share a computation: 600 subscribes in one go.
    const total = 600;
    let acked = 0;
    let okAcks = 0;
    const acks = Array.from({ length: total }, (_, i) => {
      const d = new Date(Date.UTC(2032, 0, 1) + i * 86_400_000).toISOString().slice(0, 10);
      return subscribe(flooder, { trader_id: `hl_flood_${i % 7}`, delivery_day: d }, 120_000).then((ack) => { acked++; if (ack.ok) okAcks++; return ack; });
    });
    try {
      // Refusals are answered at once; the accepted wait for their held reports.
      await until(() => acked === total - maxSubscriptions && held === maxSubscriptions, 'the refusals of the flood to be answered');
      let okAcksAtDeal: number | undefined;
      victim.once('deal', () => { okAcksAtDeal = okAcks; });
      await post(a, { id: 'hl-flood-deal', trader_id: 'hl_rita', delivery_day: day, delivery_hour: 7 }, rita);
      // The deal came while all the flood's accepted subscribes were still waiting.
      await until(() => okAcksAtDeal !== undefined, "the victim's deal while the flood's subscribes wait", 20_000);
      expect(okAcksAtDeal).toBe(0);
    } finally {
      release();
      reports.get = get;
    }
    const results = await Promise.all(acks);
    const accepted = results.filter((r) => r.ok).length;
    const refused = results.filter((r) => !r.ok);
    // The burst is the subscription cap; beyond it, refused by the rate limit (or, for the few
    // tokens refilled meanwhile, by the cap).
    expect(accepted).toBe(maxSubscriptions);
    const limited = refused.filter((r) => !r.ok && /^subscribe: rate limit of 100 at once, then 5 a second per connection/.test(r.error));
    const capped = refused.filter((r) => !r.ok && /^at most 100 subscriptions/.test(r.error));
    expect(limited.length + capped.length).toBe(total - accepted);
    expect(limited.length).toBeGreaterThan(total - subscribeBurst - 50);
    expect(errors.length).toBe(limited.length);
    expect(errors[0]).toEqual({ event: 'subscribe', message: expect.stringMatching(/^subscribe: rate limit/) });
    flooder.close();
  }, 180_000);
});

describe('cross-site live streams', () => {
  it("refuses a handshake from another site's page, with the credentials right, and takes one from its own origin", async () => {
    const host = new URL(a.url).host;
    const refusal = await connected(client(a, { authorization: rita, origin: 'https://evil.example' })).then(() => undefined, (error: Error & { data?: unknown }) => error);
    expect(refusal?.data).toEqual({ status_code: 403, message: `cross-site connection refused: Origin: "https://evil.example" is not this server (${host})` });
    const fetched = await connected(client(a, { authorization: rita, 'sec-fetch-site': 'cross-site' })).then(() => undefined, (error: Error & { data?: unknown }) => error);
    expect(fetched?.data).toMatchObject({ status_code: 403, message: 'cross-site connection refused: Sec-Fetch-Site: the request comes from another site' });
    // The dashboard's own page, and API clients that send no Origin at all.
    const own = await connected(client(a, { authorization: rita, origin: `http://${host}`, 'sec-fetch-site': 'same-origin' }));
    expect(own.connected).toBe(true);
    expect((await connected(client(a, { authorization: rita }))).connected).toBe(true);
  });
});

describe('sign-out and disabling end live streams', () => {
  async function signIn(server: TestServer, username: string, password: string): Promise<string> {
    const res = await server.request('/v1/session', { method: 'POST', auth: null, json: { username, password } });
    expect(res.status).toBe(200);
    return res.headers.get('set-cookie')!.split(';')[0]!;
  }

  it('disconnects the signed-out session\'s sockets, with the reason, and only those', async () => {
    await addUser(a.deps.db, { username: 'sofia', password: 'sofia-password', role: 'trader', trader_id: 'hl_sofia' });
    const cookie = await signIn(a, 'sofia', 'sofia-password');
    const other = await signIn(a, 'sofia', 'sofia-password'); // another browser
    const byCookie = await connected(client(a, { cookie }));
    const onB = await connected(client(b, { cookie })); // the same session on the other process
    const otherBrowser = await connected(client(a, { cookie: other }));
    const byBasic = await connected(client(a, { Authorization: basic('sofia', 'sofia-password') }));
    expect((await subscribe(byCookie, { trader_id: 'hl_sofia', delivery_day: '2031-07-01' })).ok).toBe(true);
    const ended = (c: Client) => new Promise<{ reason: string; disconnect: string }>((resolve) => {
      let reason = '';
      c.once('session_ended', (info) => { reason = info.reason; });
      c.once('disconnect', (disconnect) => resolve({ reason, disconnect }));
    });
    const endedA = ended(byCookie);
    const endedB = ended(onB);
    const res = await a.request('/v1/session', { method: 'DELETE', auth: null, headers: { cookie } });
    expect(res.status).toBe(204);
    expect(await endedA).toEqual({ reason: 'signed out', disconnect: 'io server disconnect' });
    expect(await endedB).toEqual({ reason: 'signed out', disconnect: 'io server disconnect' });
    // Still connected: another session of the same user, and Basic.
    const stillThere = await new Promise<boolean>((resolve) => otherBrowser.timeout(5000).emit('unsubscribe', { trader_id: 'hl_sofia', delivery_day: '2031-07-01' }, (err) => resolve(!err)));
    expect(stillThere).toBe(true);
    expect(otherBrowser.connected && byBasic.connected).toBe(true);
    // And the cookie no longer opens a socket.
    await expect(connected(client(a, { cookie }))).rejects.toThrow(/session expired or signed out/);
  }, 60_000);

  it('disconnects every socket of a disabled user on every process and refuses cached Basic credentials at once', async () => {
    await addUser(a.deps.db, { username: 'dora', password: 'dora-password', role: 'trader', trader_id: 'hl_dora' });
    const dora = basic('dora', 'dora-password');
    const cookie = await signIn(b, 'dora', 'dora-password');
    expect((await b.request('/v1/reports/pnl?delivery_day=2031-07-02', { auth: dora })).status).toBe(200); // Basic now cached on b
    expect((await a.request('/v1/reports/pnl?delivery_day=2031-07-02', { auth: dora })).status).toBe(200); // and on a
    const sockets = [await connected(client(a, { Authorization: dora })), await connected(client(b, { Authorization: dora })), await connected(client(a, { cookie }))];
    const reasons = sockets.map((c) => new Promise<string>((resolve) => c.once('session_ended', (info) => resolve(info.reason))));
    const gone = sockets.map((c) => new Promise<string>((resolve) => c.once('disconnect', resolve)));
    expect(await disableUser(a.deps.db, 'dora')).toBe(true); // what `npm run users -- disable` does
    expect(await Promise.all(reasons)).toEqual(['disabled', 'disabled', 'disabled']);
    expect(await Promise.all(gone)).toEqual(['io server disconnect', 'io server disconnect', 'io server disconnect']);
    for (const server of [a, b]) {
      const res = await server.request('/v1/reports/pnl?delivery_day=2031-07-02', { auth: dora });
      expect(res.status).toBe(401);
    }
  }, 60_000);
});

describe('sockets gauge and subscription cap', () => {
  async function gauge(server: TestServer): Promise<number> {
    const text = await (await server.request('/metrics')).text();
    const line = text.split('\n').find((l) => l.startsWith('powerdesk_live_sockets'));
    return line ? Number(line.split(' ').pop()) : 0;
  }

  it('counts sockets down again when they close', async () => {
    const base = await gauge(a);
    const some = await Promise.all(Array.from({ length: 3 }, () => connected(client(a, { Authorization: rita }))));
    await until(async () => (await gauge(a)) === base + 3, 'gauge up by 3');
    for (const c of some) c.close();
    await until(async () => (await gauge(a)) === base, 'gauge back down', 30_000);
  });

  it(`allows exactly ${maxSubscriptions} subscriptions and says so`, async () => {
    const c = await connected(client(a, { Authorization: basic('admin', 'admin-password') }));
    const days = Array.from({ length: maxSubscriptions + 1 }, (_, i) => new Date(Date.UTC(2040, 0, 1) + i * 86_400_000).toISOString().slice(0, 10));
    for (const day of days.slice(0, maxSubscriptions)) {
      const ack = await subscribe(c, { trader_id: 'hl_cap', delivery_day: day });
      expect(ack.ok, JSON.stringify(ack)).toBe(true);
    }
    await new Promise((r) => setTimeout(r, 1000)); // the rate limit's refill: 5 more subscribes
    const refused = await subscribe(c, { trader_id: 'hl_cap', delivery_day: days[maxSubscriptions]! });
    expect(refused).toEqual({ ok: false, error: `at most ${maxSubscriptions} subscriptions per connection: unsubscribe from another first` });
    // Subscribing again to one it has is not a new one.
    expect((await subscribe(c, { trader_id: 'hl_cap', delivery_day: days[0]! })).ok).toBe(true);
  }, 120_000);
});
