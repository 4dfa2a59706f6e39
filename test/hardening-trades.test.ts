// Hostile but fair inputs to the trades API, through the real HTTP app on the embedded database:
// instants and dates the database cannot store, oversized NDJSON, conflicts that would tell a
// trader about another's deal, repeated ids in one batch, precision finer than kept.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../server/auth/users';
import { createApp } from '../server/app';
import { sql } from '../server/db';
import { adminAuth, basic, jsonOf, startTestServer, trade, type TestServer } from './helpers/server';

let server: TestServer;
const alice = basic('alice', 'alice-password');
const bob = basic('bob', 'bob-password');
const ana = basic('ana', 'ana-password');
beforeAll(async () => {
  server = await startTestServer();
  await addUser(server.deps.db, { username: 'alice', password: 'alice-password', role: 'trader', trader_id: 'h_alice' });
  await addUser(server.deps.db, { username: 'bob', password: 'bob-password', role: 'trader', trader_id: 'h_bob' });
  await addUser(server.deps.db, { username: 'ana', password: 'ana-password', role: 'analyst' });
});
afterAll(async () => { await server?.close(); });

const post = (body: unknown, auth?: string) => server.request('/v1/trades', { method: 'POST', json: body, auth });
const batch = (body: unknown, auth?: string, query = '') => server.request(`/v1/trades/batch${query}`, { method: 'POST', json: body, auth });
const errorOf = async (res: Response) => (await jsonOf(res)) as { status_code: number; message: string };

describe('instants and dates the database cannot store, or that do not exist', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['year 0000', { execution_time: '0000-01-01T00:00:00Z' }, /^execution_time: is outside the years 0001 to 9999/],
    ['year 10000 once the offset is applied', { execution_time: '9999-12-31T23:59:59-23:59' }, /^execution_time: is outside the years 0001 to 9999/],
    ['year 0000 once the offset is applied', { execution_time: '0001-01-01T00:30:00+01:00' }, /^execution_time: is outside the years 0001 to 9999/],
    ['February 30th', { execution_time: '2023-02-30T10:00:00Z' }, /^execution_time: 2023-02-30 is not a calendar date/],
    ['April 31st', { execution_time: '2023-04-31T10:00:00+02:00' }, /^execution_time: 2023-04-31 is not a calendar date/],
    ['February 29th of a common year', { execution_time: '2023-02-29T10:00:00Z' }, /^execution_time: 2023-02-29 is not a calendar date/],
    ['hour 24', { execution_time: '2023-02-06T24:00:00Z' }, /^execution_time: 24:00:00 is not a time of day/],
    ['minute 60', { execution_time: '2023-02-06T10:60:00Z' }, /^execution_time: 10:60:00 is not a time of day/],
    ['an offset of 24 hours', { execution_time: '2023-02-06T10:00:00+24:00' }, /^execution_time: offset \+24:00 is not a UTC offset/],
    ['microseconds (finer than kept)', { execution_time: '2023-02-06T06:13:45.123456Z' }, /^execution_time: must have at most millisecond precision/],
    ['a delivery day of year 1000', { delivery_day: '1000-01-01' }, /^delivery_day: must be a date from 1900-01-01 to 9999-12-31/],
    ['a delivery day of February 30th', { delivery_day: '2023-02-30' }, /^delivery_day: must be a calendar date/],
  ];

  it.each(cases)('POST /v1/trades with %s is a 400 naming the field, and nothing is stored', async (_what, overrides, message) => {
    const id = `bad-${Math.random().toString(36).slice(2, 10)}`;
    const res = await post(trade({ id, trader_id: 'h_bad', ...overrides }));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toMatch(message);
    expect(await server.deps.db.query(sql`SELECT id FROM trade_keys WHERE id = ${id}`)).toEqual([]);
  });

  it('refuses only those items of a batch and stores every other one', async () => {
    const items = cases.map(([, overrides], i) => trade({ id: `bb-bad-${i}`, trader_id: 'h_bb', ...overrides }));
    const good = [trade({ id: 'bb-good-1', trader_id: 'h_bb' }), trade({ id: 'bb-good-2', trader_id: 'h_bb', execution_time: '2024-02-29T23:59:59.999+01:00' })];
    const res = await batch([good[0], ...items, good[1]]);
    expect(res.status).toBe(200);
    const body = await jsonOf(res);
    expect(body).toMatchObject({ received: cases.length + 2, stored: 2, invalid: cases.length });
    cases.forEach(([, , message], i) => expect(body.results[i + 1].message).toMatch(message));
    const stored = await jsonOf(await server.request('/v1/trades?trader_id=h_bb'));
    expect(stored.map((t: { id: string; execution_time: string }) => [t.id, t.execution_time])).toEqual([['bb-good-1', '2023-02-06T06:13:45Z'], ['bb-good-2', '2024-02-29T22:59:59.999Z']]);
  });

  it('answers a report for 1000-01-01 with a 400 naming the day, not a 500', async () => {
    const res = await server.request('/v1/reports/pnl?trader_id=h_bb&delivery_day=1000-01-01');
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toMatch(/^delivery_day: must be a date from 1900-01-01/);
  });
});

describe('execution_time precision', () => {
  it('refuses a re-post that differs only in microseconds instead of calling it a duplicate', async () => {
    expect((await post(trade({ id: 'us-1', trader_id: 'h_us', execution_time: '2023-02-06T06:13:45.123Z' }))).status).toBe(200);
    const again = await post(trade({ id: 'us-1', trader_id: 'h_us', execution_time: '2023-02-06T06:13:45.123400Z' }));
    expect(again.status).toBe(400);
    expect((await errorOf(again)).message).toMatch(/^execution_time: must have at most millisecond precision/);
    // Trailing zeros say nothing finer: the same instant, a duplicate.
    const same = await post(trade({ id: 'us-1', trader_id: 'h_us', execution_time: '2023-02-06T06:13:45.123000Z' }));
    expect(await jsonOf(same)).toMatchObject({ status: 'duplicate' });
    const [row] = await server.deps.db.query<{ t: string }>(sql`SELECT to_char(execution_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS t FROM trades WHERE id = 'us-1'`);
    expect(row!.t).toBe('2023-02-06T06:13:45.123000');
  });
});

describe('NDJSON batches', () => {
  const ndjson = (body: RequestInit['body'], init: RequestInit = {}) =>
    server.request('/v1/trades/batch', { method: 'POST', body, headers: { 'content-type': 'application/x-ndjson' }, ...init } as RequestInit);

  it('stops a 31 MB body of "x" lines at its 10,001st line with 413 naming the limit', async () => {
    const res = await ndjson(Buffer.from('x\n'.repeat(31 * 512 * 1024)));
    expect(res.status).toBe(413);
    expect((await errorOf(res)).message).toBe('body: at most 10000 trades per batch (line 10001 is trade 10001)');
    expect((await server.request('/healthz')).status).toBe(200);
  });

  it('answers 413 at the 10,001st line while the rest of the body is still unsent', async () => {
    // 1 MB of "x" lines now, the other 30 MB only after the answer: a server that collects the
    // body before counting its lines cannot answer in between (the test then times out).
    const url = new URL('/v1/trades/batch', server.url);
    const answer = await new Promise<{ status: number; body: string; sentAll: boolean }>((resolve, reject) => {
      let sentAll = false;
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent: false,
        headers: { authorization: adminAuth, 'content-type': 'application/x-ndjson', 'content-length': String(31 * 1024 * 1024) } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => { body += d; });
        res.on('end', () => { resolve({ status: res.statusCode!, body, sentAll }); req.destroy(); });
      });
      req.on('error', (error) => { if (!sentAll) reject(error); });
      req.write(Buffer.from('x\n'.repeat(512 * 1024)));
      const rest = setTimeout(() => { sentAll = true; req.end(Buffer.from('x\n'.repeat(15 * 1024 * 1024))); }, 25_000);
      req.on('close', () => clearTimeout(rest));
    });
    expect(answer.sentAll).toBe(false);
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).message).toBe('body: at most 10000 trades per batch (line 10001 is trade 10001)');
  }, 60_000);

  it('counts blank lines out, and names a line too long to be a trade', async () => {
    const long = `{"id":"${'y'.repeat(70_000)}"}`;
    const res = await ndjson(`${JSON.stringify(trade({ id: 'nd-1', trader_id: 'h_nd' }))}\n\n${long}\n`);
    const body = await jsonOf(res);
    expect(body).toMatchObject({ received: 2, stored: 1, invalid: 1 });
    expect(body.results[1]).toEqual({ index: 1, line: 3, status: 'invalid', message: 'line 3: longer than 65536 characters; one trade per line' });
  });

  it('serves another request while a 2 MB body is read and checked', async () => {
    // 10,000 lines of about 200 bytes, each an invalid trade (an unknown field): all work, no storing.
    const line = `${JSON.stringify({ ...trade({ trader_id: 'h_nd' }), pad: 'p'.repeat(60) })}\n`;
    const lines = 10_000;
    const chunk = Buffer.from(line.repeat(100));
    let sent = 0;
    let uploaded!: () => void;
    const allSent = new Promise<void>((resolve) => { uploaded = resolve; });
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === lines) { controller.close(); uploaded(); return; }
        controller.enqueue(chunk);
        sent += 100;
      },
    });
    const order: string[] = [];
    const big = ndjson(body, { duplex: 'half' } as RequestInit).then(async (res) => { order.push('batch'); return res; });
    await allSent;
    const health = await server.request('/healthz');
    order.push('health');
    const res = await big;
    expect(health.status).toBe(200);
    expect(res.status).toBe(200);
    expect(await jsonOf(res)).toMatchObject({ received: lines, invalid: lines, stored: 0 });
    expect(line.length * lines).toBeGreaterThan(2_000_000);
    expect(order).toEqual(['health', 'batch']);
  });
});

/** A POST with node:http, its body written in pieces: chunked unless a Content-Length is given, and
 * then never ended by the client (the answer must not need more than the pieces). */
function rawPost(path: string, headers: Record<string, string>, pieces: Buffer[]): Promise<{ status: number; body: string }> {
  const url = new URL(path, server.url);
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent: false, headers: { authorization: adminAuth, 'content-type': 'application/json', ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => { answered = true; resolve({ status: res.statusCode!, body }); req.destroy(); });
    });
    req.on('error', (error) => { if (!answered) reject(error); });
    for (const piece of pieces) req.write(piece);
    if (headers['content-length'] === undefined) req.end();
  });
}

describe('the 32 MiB body limit', () => {
  it('refuses a body whose Content-Length is over 32 MiB with 413 before the body has come', async () => {
    // 1 KB of the 33 MiB announced is sent, and the rest never: the answer comes from the header.
    const res = await rawPost('/v1/trades', { 'content-length': String(33 * 1024 * 1024) }, [Buffer.alloc(1024, 0x20)]);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).message).toBe('body: larger than 32 MiB');
  }, 30_000);

  it('counts a chunked body as it arrives: over 32 MiB is a 413, a small one is read in full', async () => {
    const big = await rawPost('/v1/trades', {}, Array.from({ length: 33 }, () => Buffer.alloc(1024 * 1024, 0x20)));
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body).message).toBe('body: larger than 32 MiB');
    const t = JSON.stringify(trade({ id: 'chunked-1', trader_id: 'h_chunked' }));
    const small = await rawPost('/v1/trades', {}, [Buffer.from(t.slice(0, 20)), Buffer.from(t.slice(20))]);
    expect(small.status).toBe(200);
    expect(JSON.parse(small.body)).toMatchObject({ status: 'stored', trade: { id: 'chunked-1', trader_id: 'h_chunked' } });
    // And by Content-Length, as every ordinary client sends it.
    const sized = await rawPost('/v1/trades', { 'content-length': String(Buffer.byteLength(t.replace('chunked-1', 'sized-1'))) }, [Buffer.from(t.replace('chunked-1', 'sized-1'))]);
    expect(sized.status).toBe(200);
    expect(JSON.parse(sized.body)).toMatchObject({ status: 'stored', trade: { id: 'sized-1' } });
  }, 60_000);
});

describe('a large batch and the event loop', () => {
  it('gives the event loop turns while it parses and checks 10,000 lines it already holds', async () => {
    // The whole body is in memory before the handler runs (the real app, without a socket), so
    // nothing but the handler's own turns lets other work run: a handler that parses and checks
    // every line in one go gives none between its first line and its answer.
    const app = createApp(server.deps);
    const headers = { authorization: adminAuth, 'content-type': 'application/x-ndjson' };
    const line = `${JSON.stringify({ ...trade({ trader_id: 'h_nd' }), pad: 'p'.repeat(60) })}\n`;
    const lines = 10_000;
    // The credentials are checked once first (later requests reuse the check).
    expect((await app.request('/v1/trades/batch', { method: 'POST', headers, body: line })).status).toBe(200);
    const bodyOf = () => new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < lines; i += 100) controller.enqueue(new TextEncoder().encode(line.repeat(100)));
        controller.close();
      },
    });
    let turns = 0;
    let handling = true;
    const spin = () => { if (handling) { turns++; setImmediate(spin); } };
    setImmediate(spin);
    const res = await app.request('/v1/trades/batch', { method: 'POST', headers, body: bodyOf(), duplex: 'half' } as RequestInit);
    handling = false;
    expect(res.status).toBe(200);
    expect(await jsonOf(res)).toMatchObject({ received: lines, invalid: lines, stored: 0 });
    // 10,000 lines: a turn at least every 500 lines read and every 500 checked.
    expect(turns).toBeGreaterThanOrEqual(2 * (lines / 500));
  });
});

describe('conflicts', () => {
  it('tells a trader who may not see the stored trade only that its id is taken', async () => {
    expect((await post(trade({ id: 'leak-1', trader_id: 'h_alice', price: 4321, quantity: 7 }), alice)).status).toBe(200);
    const guess = await post(trade({ id: 'leak-1', trader_id: 'h_bob', price: 4321 }), bob);
    expect(guess.status).toBe(409);
    expect(await errorOf(guess)).toEqual({ status_code: 409, message: 'id: trade id leak-1 is already taken by another trade' });
    const inBatch = await jsonOf(await batch([trade({ id: 'leak-1', trader_id: 'h_bob', price: 4321, quantity: 7 })], bob));
    expect(inBatch.results[0]).toEqual({ index: 0, id: 'leak-1', status: 'conflict', message: 'trade id leak-1 is already taken by another trade' });
    // Alice herself, and the desk, learn what differs.
    expect((await errorOf(await post(trade({ id: 'leak-1', trader_id: 'h_alice', price: 4322, quantity: 7 }), alice))).message).toBe('id: trade leak-1 already exists with different price');
    expect((await errorOf(await post(trade({ id: 'leak-1', trader_id: 'h_bob', price: 4321, quantity: 7 })))).message).toBe('id: trade leak-1 already exists with different trader_id');
  });

  it('names the API\'s delivery fields, not the columns behind them', async () => {
    expect((await post(trade({ id: 'names-1', trader_id: 'h_names', delivery_day: '2023-10-29', delivery_hour: 2 }))).status).toBe(200);
    const cases: [Record<string, unknown>, string][] = [
      [{ delivery_day: '2023-10-29', delivery_hour: 3 }, 'delivery_hour'],
      [{ delivery_day: '2023-10-29', delivery_hour: 2, delivery_period: '02-03B' }, 'delivery_period'],
      [{ delivery_day: '2023-10-29', delivery_hour: 2, delivery_period: '02:15-02:30' }, 'delivery_period'],
      [{ delivery_day: '2023-10-30', delivery_hour: 2 }, 'delivery_day'],
    ];
    for (const [overrides, field] of cases) {
      const res = await post(trade({ id: 'names-1', trader_id: 'h_names', ...overrides }));
      expect((await errorOf(res)).message).toBe(`id: trade names-1 already exists with different ${field}`);
    }
  });

  it('compares every repeat of an id in a batch with the stored trade, and the importer counts follow', async () => {
    const stored = trade({ id: 'rep-1', trader_id: 'h_rep', price: 2050, quantity: 12.3 });
    expect(await jsonOf(await batch([stored], undefined, '?source=file'))).toMatchObject({ stored: 1 }); // as the exchange's file said it
    const changed = { ...stored, price: 2100 };
    const more = { ...stored, price: 2100, quantity: 5 };
    const start = await jsonOf(await server.request('/v1/imports', { method: 'POST', json: { file_name: 'epex_trades_20230206.csv', sha256: 'a'.repeat(64), size_bytes: 100, trading_day: '2023-02-06' } }));
    const res = await batch([changed, changed, more, stored], undefined, `?source=file&import_id=${start.import.id}&first_line=2&last_line=5`);
    const body = await jsonOf(res);
    expect(res.status, JSON.stringify({ start, body })).toBe(200);
    expect(body.results.map((r: { status: string; message?: string }) => [r.status, r.message])).toEqual([
      ['conflict', 'trade rep-1 already exists with different price'],
      ['conflict', 'trade rep-1 already exists with different price'],
      ['conflict', 'trade rep-1 already exists with different price, quantity'],
      ['duplicate', undefined],
    ]);
    expect(body).toMatchObject({ received: 4, stored: 0, duplicates: 1, conflicts: 3 });
    const record = await jsonOf(await server.request(`/v1/imports/${start.import.id}`));
    expect(record).toMatchObject({ stored: 0, duplicates: 1, conflicts: 3 });
  });

  it('compares the repeats of a new id with its first occurrence, which is stored', async () => {
    const first = trade({ id: 'rep-2', trader_id: 'h_rep' });
    const body = await jsonOf(await batch([first, { ...first, quantity: 1 }, first]));
    expect(body.results.map((r: { status: string; message?: string }) => [r.status, r.message])).toEqual([
      ['stored', undefined], ['conflict', 'trade rep-2 already exists with different quantity'], ['duplicate', undefined],
    ]);
  });
});

describe('roles', () => {
  it('answers an analyst\'s batch with 403, not 200 with every item invalid', async () => {
    const res = await batch([trade({ id: 'an-1', trader_id: 'h_an' })], ana);
    expect(res.status).toBe(403);
    expect((await errorOf(res)).message).toBe('role analyst may not add trades');
    const ndjson = await server.request('/v1/trades/batch', { method: 'POST', body: `${JSON.stringify(trade({ id: 'an-2' }))}\n`, headers: { 'content-type': 'application/x-ndjson' }, auth: ana });
    expect(ndjson.status).toBe(403);
  });
});
