// The exchange session, protocol version 2, over the websocket: seq commits with the deals,
// resume after drops and restarts, gaps, duplicates, unknown kinds, version 1 frames, redundant
// gateways, a restarted numbering, lost gaps, handlers of other kinds, send(); deal recalls
// through to the report, the trades list and the live client. Real simulator, real gateway, real
// embedded database and the real HTTP app and Socket.IO.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { io as connect, type Socket } from 'socket.io-client';
import { startExchangeSim, type ExchangeSim } from '../scripts/exchange-sim';
import { sql, type Queryable } from '../server/db';
import type { FeedGateway, GatewayOptions } from '../server/feed/gateway';
import type { ClientToServerEvents, FeedStatus, PnlReport, PnlUpdate, RecalledTrade, ServerToClientEvents, SubscribeAck } from '../server/live/events';
import { localDay } from '../server/time/market-time';
import { connected, exchangeHarness, storedIds as storedIdsOf } from './helpers/exchange';
import { adminAuth } from './helpers/server';
import { until } from './helpers/wait';

const tz = 'Europe/Berlin';
const fast = { heartbeatMs: 100, backoffMinMs: 20, backoffMaxMs: 200, batchMs: 5, resumeTimeoutMs: 300 } satisfies Partial<GatewayOptions>;
const h = exchangeHarness(fast);
const { sim, gateway, cleanup } = h;
const storedIds = (prefix: string) => storedIdsOf(h.server.deps.db, prefix);

const prefixOf = (s: ExchangeSim) => s.deals[0]!.id.split('-')[0]!;

async function allStored(s: ExchangeSim, timeoutMs = 15_000) {
  await until(async () => (await storedIds(prefixOf(s))).size === s.deals.length, `all ${s.deals.length} deals stored`, timeoutMs);
  const stored = await storedIds(prefixOf(s));
  expect([...stored.keys()].sort()).toEqual(s.deals.map((d) => d.id).sort());
  expect([...stored.values()].every((n) => n === 1)).toBe(true);
}

async function sessionRow() {
  const [row] = await h.server.deps.db.query<{ committed_seq: number; exchange_seq: number; resets: number }>(sql`SELECT committed_seq, exchange_seq, resets FROM exchange_sessions WHERE member = ${h.member}`);
  return row!;
}

const resumes = (s: ExchangeSim) => s.fromClients.filter((m): m is { resume: { after_seq: number } } => typeof m === 'object' && m !== null && 'resume' in m).map((m) => m.resume.after_seq);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (r: Promise<Response>): Promise<any> => (await r).json();

describe('exchange session (protocol version 2)', () => {
  it('stores every deal once and commits the last seq when the connection drops while deals flow and the exchange replays on resume', async () => {
    const s = await sim();
    const g = await gateway(s.url);
    await connected(g);
    for (let i = 0; i < 150; i++) s.sendDeal({ trader_id: 'xs_drop' });
    await until(async () => (await sessionRow()).committed_seq > 0, 'a first commit');
    s.dropConnections();
    for (let i = 0; i < 50; i++) s.sendDeal({ trader_id: 'xs_drop' }); // nobody connected: only the resume brings them
    await connected(g, 2);
    for (let i = 0; i < 100; i++) s.sendDeal({ trader_id: 'xs_drop' });
    await allStored(s);
    await g.drained();
    expect(g.counts).toMatchObject({ stored: 300, duplicates: 0, conflicts: 0, dead_lettered: 0 });
    expect(await sessionRow()).toMatchObject({ committed_seq: 300, exchange_seq: 300 });
    const [first, second] = resumes(s);
    expect(first).toBe(0); // a member that committed nothing asks for everything
    expect(second).toBeGreaterThan(0); // the reconnect resumes from what was committed, not from 0
    expect(second).toBeLessThanOrEqual(150);
  });

  it('asks for a resume and shows every gap with when it was filled when the exchange skips seqs', async () => {
    const s = await sim({ gapEvery: 10 });
    const g = await gateway(s.url);
    await connected(g);
    for (let i = 0; i < 95; i++) s.sendDeal({ trader_id: 'xs_gap' });
    await allStored(s);
    await g.drained();
    expect((await sessionRow()).committed_seq).toBe(95);
    const status: FeedStatus = await json(h.server.request('/v1/feed/status'));
    const session = status.sessions.find((x) => x.member === h.member)!;
    expect(session).toMatchObject({ committed_seq: 95, exchange_seq: 95 });
    expect(session.gaps.length).toBeGreaterThanOrEqual(1);
    for (const gap of session.gaps) {
      expect(gap.to_seq).toBeGreaterThanOrEqual(gap.from_seq);
      expect(gap.filled_at).not.toBeNull();
      expect(gap.lost_at).toBeNull();
      expect(Date.parse(gap.filled_at!)).toBeGreaterThanOrEqual(Date.parse(gap.detected_at));
    }
    expect(resumes(s).length).toBeGreaterThanOrEqual(2);
  });

  it('resumes from the committed seq when a restarted gateway takes over the member and gets what was sent meanwhile', async () => {
    const s = await sim();
    const first = await gateway(s.url, { gatewayId: `gw-${h.member}` });
    await connected(first);
    for (let i = 0; i < 40; i++) s.sendDeal({ trader_id: 'xs_restart' });
    await until(async () => (await storedIds(prefixOf(s))).size === 40, 'the first 40');
    await first.close();
    for (let i = 0; i < 60; i++) s.sendDeal({ trader_id: 'xs_restart' }); // while no gateway runs
    const second = await gateway(s.url, { gatewayId: `gw-${h.member}` });
    await connected(second);
    await allStored(s);
    expect(resumes(s).at(-1)).toBe(40);
    expect(second.counts.stored).toBe(100); // the same id carries its counters over
    const rows = await h.server.deps.db.query(sql`SELECT 1 FROM feed_gateways WHERE gateway_id = ${`gw-${h.member}`}`);
    expect(rows).toHaveLength(1);
  });

  it('ignores a replayed duplicate and dead-letters an unknown kind while still advancing the seq when the exchange sends them', async () => {
    const s = await sim();
    const g = await gateway(s.url);
    await connected(g);
    const deal = s.sendDeal({ trader_id: 'xs_kinds' });
    await until(async () => (await sessionRow()).committed_seq === 1, 'seq 1 committed');
    s.send(JSON.stringify({ seq: 1, deal_confirmation: { ...deal, price: 99.99 } })); // seq 1 again: ignored, not a conflict
    s.send({ order_ack: { id: 'o-1' } }); // seq 2: no handler
    s.send({ deal_confirmation: { id: 'cut-short' } }, { cut: true }); // seq 3: not JSON, but its seq is readable
    s.sendDeal({ trader_id: 'xs_kinds' }); // seq 4
    await until(async () => (await sessionRow()).committed_seq === 4, 'seq 4 committed');
    await g.drained();
    expect(g.counts).toMatchObject({ stored: 2, conflicts: 0, dead_lettered: 2 });
    expect(g.counts.ignored).toBeGreaterThanOrEqual(1);
    const letters = await h.server.deps.db.query<{ seq: number; reason: string }>(sql`SELECT seq, reason FROM feed_dead_letters WHERE gateway_id = ${g.gatewayId} ORDER BY id`);
    expect(letters.map((l) => l.seq)).toEqual([2, 3]);
    expect(letters[0]!.reason).toMatch(/^message: expected the key "deal_confirmation" .*got keys "order_ack"/);
    expect(letters[1]!.reason).toMatch(/^message: not valid JSON/);
    expect(resumes(s)).toEqual([0]); // nothing was missing: no second resume
  });

  it('stores version 1 frames without seq alongside numbered ones when a frame carries no seq', async () => {
    const s = await sim();
    const g = await gateway(s.url);
    await connected(g);
    s.sendDeal({ trader_id: 'xs_v1' });
    const bare = s.makeDeal({ trader_id: 'xs_v1' });
    s.send(JSON.stringify({ deal_confirmation: bare }));
    s.sendDeal({ trader_id: 'xs_v1' });
    await until(async () => (await storedIds(prefixOf(s))).size === 3, 'three deals');
    expect((await sessionRow()).committed_seq).toBe(2);
  });

  it('applies every message once and shares the resume point when two gateways receive the same member', async () => {
    const s = await sim();
    const [a, b] = await Promise.all([gateway(s.url), gateway(s.url)]);
    await connected(a);
    await connected(b);
    await s.waitForClients(2);
    for (let i = 0; i < 400; i++) s.sendDeal({ trader_id: 'xs_two' });
    s.sendRecall(s.deals[7]!.id, 'mistrade');
    await allStored(s);
    await until(async () => (await sessionRow()).committed_seq === 401, 'seq 401 committed');
    // drained() covers what a gateway has received: wait until both have every frame.
    await until(() => a.counts.received >= 401 && b.counts.received >= 401, 'both gateways received all 401 frames');
    await Promise.all([a.drained(), b.drained()]);
    expect(a.counts.stored + b.counts.stored).toBe(400);
    expect(a.counts.duplicates + b.counts.duplicates).toBe(0); // the other gateway's messages are skipped by seq, not re-ingested
    expect(a.counts.recalls + b.counts.recalls).toBe(1);
    expect(a.counts.ignored + b.counts.ignored).toBeGreaterThanOrEqual(401);
  });

  it('starts again from the exchange numbering and stores its deals when the exchange restarted its sequence', async () => {
    const s1 = await startExchangeSim({ idPrefix: `r1${h.member}` });
    const g = await gateway(s1.url, { backoffMinMs: 20, backoffMaxMs: 50 });
    await connected(g);
    for (let i = 0; i < 30; i++) s1.sendDeal({ trader_id: 'xs_reset' });
    await until(async () => (await sessionRow()).committed_seq === 30, 'seq 30 committed');
    const port = s1.port;
    await s1.close();
    const s2 = await sim({ port, idPrefix: `r2${h.member}` }); // a new exchange process: numbering from 1 again
    await connected(g, 2);
    for (let i = 0; i < 10; i++) s2.sendDeal({ trader_id: 'xs_reset' });
    await allStored(s2);
    expect(await sessionRow()).toMatchObject({ committed_seq: 10, resets: 1 });
  });

  it('records a gap as lost and carries on when the exchange cannot replay it', async () => {
    const s = await sim({ gapEvery: 5 });
    const g = await gateway(s.url, { resumeTimeoutMs: 100 });
    await connected(g);
    for (let i = 0; i < 4; i++) s.sendDeal({ trader_id: 'xs_lost' });
    await until(async () => (await sessionRow()).committed_seq === 4, 'seq 4 committed');
    const held = s.sendDeal({ trader_id: 'xs_lost' }); // seq 5: journaled, not sent ...
    s.journal.splice(s.journal.findIndex((e) => e.seq === 5), 1); // ... and forgotten, as an exchange that no longer holds it
    const later = s.sendDeal({ trader_id: 'xs_lost' }); // seq 6
    await until(async () => (await storedIds(prefixOf(s))).has(later.id), 'the deal after the lost one', 10_000);
    expect((await storedIds(prefixOf(s))).has(held.id)).toBe(false); // only the nightly file can bring it now
    const [gap] = await h.server.deps.db.query<{ from_seq: number; to_seq: number; lost_at: Date | null; filled_at: Date | null }>(sql`SELECT from_seq, to_seq, lost_at, filled_at FROM exchange_gaps WHERE member = ${h.member}`);
    expect(gap).toMatchObject({ from_seq: 5, to_seq: 5, filled_at: null });
    expect(gap!.lost_at).toBeInstanceOf(Date);
    expect((await sessionRow()).committed_seq).toBe(6);
  });

  it('runs the handler of another kind in the transaction of its seq, so a batch stores nothing until the handler succeeds', async () => {
    const s = await sim();
    const db = h.server.deps.db;
    await db.execScript(`CREATE TABLE IF NOT EXISTS test_reports (member text, seq bigint, body jsonb)`);
    let calls = 0;
    const handler = async (tx: Queryable, messages: { seq: number | null; body: unknown }[]) => {
      calls += 1;
      for (const m of messages) await tx.query(sql`INSERT INTO test_reports (member, seq, body) VALUES (${h.member}, ${m.seq}, ${JSON.stringify(m.body)}::jsonb)`);
      if (calls === 1) throw new Error('the order book was not reachable (injected)');
    };
    const g = await gateway(s.url, { handlers: { execution_report: handler }, batchMs: 50, backoffMinMs: 10 });
    await connected(g);
    s.sendDeal({ trader_id: 'xs_handler' });
    s.send({ execution_report: { order_id: 'o-7', status: 'filled' } });
    s.sendDeal({ trader_id: 'xs_handler' });
    await until(async () => (await sessionRow()).committed_seq === 3, 'seq 3 committed after the retry');
    expect(calls).toBe(2);
    const reports = await db.query<{ seq: number; body: unknown }>(sql`SELECT seq, body FROM test_reports WHERE member = ${h.member}`);
    expect(reports).toEqual([{ seq: 2, body: { order_id: 'o-7', status: 'filled' } }]); // the failed attempt left nothing
    expect((await storedIds(prefixOf(s))).size).toBe(2);
  });

  it('gets what was sent while it was away when the simulator restarted with its journal file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pd-journal-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const journalFile = path.join(dir, 'journal.ndjson');
    const first = await startExchangeSim({ idPrefix: `j${h.member}`, journalFile });
    const sent = Array.from({ length: 25 }, () => first.sendDeal({ trader_id: 'xs_journal' }).id);
    const port = first.port;
    await first.close(); // nobody ever received these
    const second = await sim({ port, journalFile });
    expect(second.journal.map((e) => e.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    const g = await gateway(second.url);
    await connected(g);
    await until(async () => (await sessionRow()).committed_seq === 25, 'the journal replayed and committed');
    const stored = await storedIds(`j${h.member}`);
    expect([...stored.keys()].sort()).toEqual([...sent].sort());
    second.sendDeal({ trader_id: 'xs_journal' });
    await until(async () => (await sessionRow()).committed_seq === 26, 'numbering goes on from the journal');
  });

  it('resolves send once written to the open socket and rejects it when the exchange is not connected', async () => {
    const s = await sim();
    const g = await gateway(s.url, { backoffMinMs: 5000, backoffMaxMs: 5000 });
    await connected(g);
    await g.send({ order_new: { client_order_id: 'c-1', side: 'buy' } });
    await until(() => s.fromClients.some((m) => JSON.stringify(m).includes('c-1')), 'the order at the exchange');
    s.dropConnections();
    await until(() => !g.connected, 'disconnected');
    await expect(g.send({ order_new: { client_order_id: 'c-2' } })).rejects.toThrow(/not connected/);
  });
});

type Client = Socket<ServerToClientEvents, ClientToServerEvents>;

describe('deal recalls', () => {
  let sock: Client | undefined;
  afterEach(() => { sock?.close(); sock = undefined; });

  const report = async (trader: string, day: string): Promise<PnlReport> => json(h.server.request(`/v1/reports/pnl?trader_id=${trader}&delivery_day=${day}`));

  it('leaves a recalled deal out of the report and the desk, strikes it on the tape and pushes the corrected pnl row when the exchange recalls it', async () => {
    const s = await sim();
    const g = await gateway(s.url);
    await connected(g);
    const day = localDay(new Date(), tz);
    const trader = `xr_${h.member}`;
    sock = connect(h.server.url, { extraHeaders: { Authorization: adminAuth }, transports: ['websocket'] });
    const ack: SubscribeAck = await sock.timeout(5000).emitWithAck('subscribe', { trader_id: trader, delivery_day: day });
    expect(ack.ok).toBe(true);
    const keep = s.sendDeal({ trader_id: trader, delivery_day: day, delivery_hour: '10-11', price: 50, quantity: 2, direction: 'sell' });
    const bad = s.sendDeal({ trader_id: trader, delivery_day: day, delivery_hour: '10-11', price: 80, quantity: 1, direction: 'sell' });
    await until(async () => (await report(trader, day)).total.trades === 2, 'both deals in the report');
    expect((await report(trader, day)).total.pnl_eur).toBe(180);
    const recalled = new Promise<RecalledTrade>((resolve) => sock!.on('recall', resolve));
    const corrected = new Promise<PnlUpdate>((resolve) => sock!.on('pnl', (u) => { if (u.total.trades === 1) resolve(u); }));
    s.sendRecall(bad.id, 'mistrade: price out of range');
    const live = await recalled;
    expect(live).toMatchObject({ id: bad.id, trader_id: trader, recall: { reason: 'mistrade: price out of range' } });
    const row = await corrected;
    expect(row.hour).toMatchObject({ label: '10-11', trades: 1, sell_mw: 2, pnl_eur: 100 });
    expect(row.total).toMatchObject({ trades: 1, pnl_eur: 100 });
    expect((await report(trader, day)).total).toMatchObject({ trades: 1, pnl_eur: 100 });
    const desk = await json(h.server.request(`/v1/reports/desk?delivery_day=${day}`));
    expect(desk.traders.find((t: { trader_id: string }) => t.trader_id === trader)).toMatchObject({ trades: 1, pnl_eur: 100 });
    const listed = await json(h.server.request(`/v1/trades?trader_id=${trader}`));
    expect(listed.find((t: { id: string }) => t.id === keep.id).recall).toBeUndefined();
    expect(listed.find((t: { id: string }) => t.id === bad.id).recall).toMatchObject({ reason: 'mistrade: price out of range' });
    expect(g.counts.recalls).toBe(1);
  });

  it('refreshes a materialised past hour so the report leaves the recalled deal out when the deal was delivered on a past day', async () => {
    const s = await sim();
    const g = await gateway(s.url);
    await connected(g);
    const trader = `xp_${h.member}`;
    const day = '2023-05-10';
    s.sendDeal({ trader_id: trader, delivery_day: day, delivery_hour: '08-09', price: 40, quantity: 1, direction: 'buy' });
    const bad = s.sendDeal({ trader_id: trader, delivery_day: day, delivery_hour: '08-09', price: 60, quantity: 3, direction: 'buy' });
    await until(async () => (await report(trader, day)).total.trades === 2, 'both deals in the past day\'s report');
    // Materialised (as every start and every new day does): the hour is read from the
    // materialisation now, and the recall must refresh it.
    await h.server.deps.pnlFreshness!.materialiseHistory();
    expect(await h.server.deps.pnlFreshness!.watermark()).toBeGreaterThan(Date.parse('2023-05-10T06:00:00Z')); // 08-09 Berlin
    expect((await report(trader, day)).total.trades).toBe(2);
    s.sendRecall(bad.id);
    await until(async () => (await report(trader, day)).total.trades === 1, 'the report without the recalled deal');
    expect((await report(trader, day)).total).toMatchObject({ trades: 1, buy_mw: 1, pnl_eur: -40 });
  });

  it('keeps the recall of a deal not stored yet and applies it when the deal arrives', async () => {
    const s = await sim();
    const g = await gateway(s.url);
    await connected(g);
    const trader = `xu_${h.member}`;
    const day = localDay(new Date(), tz);
    const id = `${h.member}-late`;
    s.sendRecall(id, 'mistrade');
    await until(async () => (await sessionRow()).committed_seq === 1, 'the recall committed');
    const [pending] = await h.server.deps.db.query(sql`SELECT reason FROM deal_recalls WHERE id = ${id}`);
    expect(pending).toEqual({ reason: 'mistrade' });
    s.sendDeal({ id, trader_id: trader, delivery_day: day, delivery_hour: '12-13', price: 70, quantity: 4, direction: 'sell' });
    s.sendDeal({ trader_id: trader, delivery_day: day, delivery_hour: '12-13', price: 10, quantity: 1, direction: 'sell' });
    await until(async () => (await sessionRow()).committed_seq === 3, 'both deals committed');
    expect((await report(trader, day)).total).toMatchObject({ trades: 1, pnl_eur: 10 });
    const listed = await json(h.server.request(`/v1/trades?trader_id=${trader}`));
    expect(listed.find((t: { id: string }) => t.id === id).recall).toMatchObject({ reason: 'mistrade' });
    expect(g.counts).toMatchObject({ stored: 2, recalls: 1 });
  });

  it('dead-letters a recall without an id and names the field', async () => {
    const s = await sim();
    const g = await gateway(s.url);
    await connected(g);
    s.send({ deal_recall: { reason: 'mistrade' } });
    await until(() => g.counts.dead_lettered === 1, 'the dead letter');
    const [letter] = await h.server.deps.db.query<{ reason: string; seq: number }>(sql`SELECT reason, seq FROM feed_dead_letters WHERE gateway_id = ${g.gatewayId}`);
    expect(letter).toMatchObject({ seq: 1 });
    expect(letter!.reason).toMatch(/^deal_recall\.id: /);
    expect((await sessionRow()).committed_seq).toBe(1);
  });
});
