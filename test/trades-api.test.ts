// The trades REST API through the real HTTP app on the embedded TimescaleDB.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../server/auth/users';
import { sql } from '../server/db';
import { basic, jsonOf, startTestServer, trade, type TestServer } from './helpers/server';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
  await addUser(server.deps.db, { username: 'alice', password: 'alice-password', role: 'trader', trader_id: 'alice_t' });
  await addUser(server.deps.db, { username: 'ana', password: 'ana-password', role: 'analyst' });
});
afterAll(async () => { await server?.close(); });

const post = (body: unknown, auth?: string) => server.request('/v1/trades', { method: 'POST', json: body, auth });
const errorOf = async (res: Response) => (await jsonOf(res)) as { status_code: number; message: string };

describe('authentication', () => {
  it('answers 401 with WWW-Authenticate: Basic when no credentials are given', async () => {
    const res = await server.request('/v1/trades', { auth: null });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic /);
    expect(await errorOf(res)).toEqual({ status_code: 401, message: expect.stringMatching(/authentication required/) });
  });

  it('answers 401 when the password is wrong or the header is malformed', async () => {
    expect((await server.request('/v1/trades', { auth: basic('admin', 'nope') })).status).toBe(401);
    const malformed = await server.request('/v1/trades', { auth: 'Basic ???' });
    expect(malformed.status).toBe(401);
    expect((await errorOf(malformed)).message).toMatch(/malformed Authorization header/);
    expect((await server.request('/v1/trades', { auth: basic('nobody', 'whatever-pass') })).status).toBe(401);
  });

  it('answers 200 with the right credentials', async () => {
    expect((await server.request('/v1/trades?trader_id=none')).status).toBe(200);
  });

  it('rate-limits failed logins with 429 and Retry-After, also for the right password', async () => {
    await addUser(server.deps.db, { username: 'victim', password: 'victim-password', role: 'analyst' });
    for (let i = 0; i < 10; i++) expect((await server.request('/v1/trades', { auth: basic('victim', `guess-${i}`) })).status).toBe(401);
    const limited = await server.request('/v1/trades', { auth: basic('victim', 'victim-password') });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await errorOf(limited)).message).toMatch(/too many failed logins for victim/);
    // Other users are not affected.
    expect((await server.request('/v1/trades?trader_id=x', { auth: basic('ana', 'ana-password') })).status).toBe(200);
  }, 120_000); // a dozen scrypt hashes (N=2^17) one after another

  it('signs a browser in with an HttpOnly SameSite cookie, and out again', async () => {
    const signIn = await server.request('/v1/session', { method: 'POST', json: { username: 'alice', password: 'alice-password' }, auth: null });
    expect(signIn.status).toBe(200);
    expect(await jsonOf(signIn)).toEqual({ username: 'alice', role: 'trader', trader_id: 'alice_t', desk: false });
    const cookie = signIn.headers.get('set-cookie')!;
    expect(cookie).toMatch(/pd_session=[^;]+;/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const token = /pd_session=([^;]+)/.exec(cookie)![1]!;
    const me = await server.request('/v1/session', { auth: null, headers: { cookie: `pd_session=${token}` } });
    expect(await jsonOf(me)).toMatchObject({ username: 'alice' });
    expect((await server.request('/v1/session', { method: 'DELETE', auth: null, headers: { cookie: `pd_session=${token}` } })).status).toBe(204);
    expect((await server.request('/v1/session', { auth: null, headers: { cookie: `pd_session=${token}` } })).status).toBe(401);
    const wrong = await server.request('/v1/session', { method: 'POST', json: { username: 'alice', password: 'bad' }, auth: null });
    expect(wrong.status).toBe(401);
  });
});

describe('POST /v1/trades', () => {
  it('stores a trade and returns it as stored', async () => {
    const t = trade({ id: 'p-1', trader_id: 'p' });
    const res = await post(t);
    expect(res.status).toBe(200);
    expect(await jsonOf(res)).toEqual({ status: 'stored', trade: t });
  });

  it('answers a harmless 200 "duplicate" when the identical trade is posted again, and stores it once', async () => {
    const t = trade({ id: 'dup-1', trader_id: 'dup' });
    expect((await post(t)).status).toBe(200);
    const again = await post(t);
    expect(again.status).toBe(200);
    expect((await jsonOf(again)).status).toBe('duplicate');
    const list = await jsonOf(await server.request('/v1/trades?trader_id=dup'));
    expect(list).toHaveLength(1);
  });

  it('answers 409 naming the fields when the same id comes with different content', async () => {
    expect((await post(trade({ id: 'c-1', trader_id: 'c' }))).status).toBe(200);
    const res = await post(trade({ id: 'c-1', trader_id: 'c', price: 2100, quantity: 5 }));
    expect(res.status).toBe(409);
    expect(await errorOf(res)).toEqual({ status_code: 409, message: 'id: trade c-1 already exists with different price, quantity' });
    const moved = await post(trade({ id: 'c-1', trader_id: 'c', delivery_hour: 9 }));
    expect(moved.status).toBe(409);
    expect((await errorOf(moved)).message).toBe('id: trade c-1 already exists with different delivery_hour'); // the API's field, not a column
    const [stored] = await jsonOf(await server.request('/v1/trades?trader_id=c'));
    expect(stored.price).toBe(2050);
  });

  const invalid: [string, Record<string, unknown>, RegExp][] = [
    ['price is not an integer', { price: 20.5 }, /^price: must be an integer number of eurocent per MWh \(got 20\.5\)$/],
    ['price is a string', { price: '2050' }, /^price: must be a number/],
    ['quantity is zero', { quantity: 0 }, /^quantity: must be greater than 0 MW \(got 0\)$/],
    ['quantity is negative', { quantity: -1 }, /^quantity: must be greater than 0 MW/],
    ['quantity is not a number', { quantity: 'lots' }, /^quantity: must be a number/],
    ['quantity has too many decimals', { quantity: 1.1234567 }, /^quantity: must have at most 6 decimal places$/],
    ['direction is unknown', { direction: 'hold' }, /^direction: must be "buy" or "sell" \(got "hold"\)$/],
    ['delivery_day is not a date', { delivery_day: '06.02.2023' }, /^delivery_day: must be a calendar date YYYY-MM-DD/],
    ['delivery_day is not on the calendar', { delivery_day: '2023-02-30' }, /^delivery_day: must be a calendar date/],
    ['delivery_hour is 24', { delivery_hour: 24 }, /^delivery_hour: must be from 0 to 23 \(got 24\)$/],
    ['delivery_hour is negative', { delivery_hour: -1 }, /^delivery_hour: must be from 0 to 23/],
    ['delivery_hour is fractional', { delivery_hour: 8.5 }, /^delivery_hour: must be an integer/],
    ['delivery_hour is skipped by DST', { delivery_day: '2023-03-26', delivery_hour: 2 }, /^delivery_hour: hour 02 does not exist on 2023-03-26 in Europe\/Berlin/],
    ['execution_time is not ISO-8601', { execution_time: '06.02.2023 06:13' }, /^execution_time: must be an ISO-8601 date-time/],
    ['trader_id is empty', { trader_id: '' }, /^trader_id: must not be empty$/],
    ['id is a number', { id: 123 }, /^id: must be a string/],
    ['an unknown field is present', { colour: 'red' }, /unknown field "colour"/],
  ];
  it.each(invalid)('answers 400 naming the field when %s', async (_case, override, message) => {
    const res = await post(trade({ id: 'bad-1', ...override }));
    expect(res.status).toBe(400);
    const body = await errorOf(res);
    expect(body.status_code).toBe(400);
    expect(body.message).toMatch(message);
  });

  it('answers 400 naming every missing field', async () => {
    const res = await post({ id: 'x' });
    expect(res.status).toBe(400);
    const { message } = await errorOf(res);
    for (const field of ['price', 'quantity', 'direction', 'delivery_day', 'delivery_hour', 'trader_id', 'execution_time']) expect(message).toContain(`${field}: is required`);
  });

  it('answers 400 for a body that is not JSON, empty, or not an object', async () => {
    const notJson = await server.request('/v1/trades', { method: 'POST', body: '{"id":', headers: { 'content-type': 'application/json' } });
    expect(notJson.status).toBe(400);
    expect((await errorOf(notJson)).message).toMatch(/^body: not valid JSON/);
    const empty = await server.request('/v1/trades', { method: 'POST', body: '', headers: { 'content-type': 'application/json' } });
    expect((await errorOf(empty)).message).toMatch(/^body: empty/);
    const array = await post([trade()]);
    expect(array.status).toBe(400);
  });

  it('normalises an execution_time with an offset to UTC', async () => {
    await post(trade({ id: 'tz-1', trader_id: 'tz', execution_time: '2023-02-06T07:13:45+01:00' }));
    const [stored] = await jsonOf(await server.request('/v1/trades?trader_id=tz'));
    expect(stored.execution_time).toBe('2023-02-06T06:13:45Z');
  });
});

describe('delivery periods', () => {
  it('does store a quarter hour given as delivery_period and show it so that posting it back is a duplicate', async () => {
    const q = trade({ id: 'dp-q', trader_id: 'dp', delivery_hour: 8, delivery_period: '08:15-08:30' });
    const res = await post(q);
    expect(res.status).toBe(200);
    expect(await jsonOf(res)).toEqual({ status: 'stored', trade: q });
    const [listed] = await jsonOf(await server.request('/v1/trades?trader_id=dp'));
    expect(listed).toEqual(q);
    expect((await jsonOf(await post(listed))).status).toBe('duplicate');
    // The plain hour 8 is another product: same id, other content.
    const hour = await post(trade({ id: 'dp-q', trader_id: 'dp', delivery_hour: 8 }));
    expect(hour.status).toBe(409);
  });

  it('does tell the two 02:00 hours of the autumn day apart with "02-03B"', async () => {
    const first = trade({ id: 'dp-a', trader_id: 'dp_dst', delivery_day: '2023-10-29', delivery_hour: 2 });
    const second = trade({ id: 'dp-b', trader_id: 'dp_dst', delivery_day: '2023-10-29', delivery_hour: 2, delivery_period: '02-03B' });
    const quarter = trade({ id: 'dp-bq', trader_id: 'dp_dst', delivery_day: '2023-10-29', delivery_hour: 2, delivery_period: '02:45-03:00B' });
    for (const t of [first, second, quarter]) expect((await post(t)).status).toBe(200);
    expect(await jsonOf(await server.request('/v1/trades?trader_id=dp_dst'))).toEqual([first, second, quarter]);
    const rows = await server.deps.db.query<{ id: string; delivery_start: Date }>(sql`SELECT id, delivery_start FROM trades WHERE trader_id = 'dp_dst' ORDER BY delivery_start`);
    expect(rows.map((r) => [r.id, r.delivery_start.toISOString()])).toEqual([['dp-a', '2023-10-29T00:00:00.000Z'], ['dp-b', '2023-10-29T01:00:00.000Z'], ['dp-bq', '2023-10-29T01:45:00.000Z']]);
  });

  it('does treat "08-09" and "02-03A" as the plain hour, shown without a period', async () => {
    const plain = trade({ id: 'dp-p', trader_id: 'dp_plain', delivery_period: '08-09' });
    expect((await jsonOf(await post(plain))).trade).toEqual(trade({ id: 'dp-p', trader_id: 'dp_plain' }));
    expect((await jsonOf(await post(trade({ id: 'dp-p', trader_id: 'dp_plain' })))).status).toBe('duplicate');
    const a = await post(trade({ id: 'dp-pa', trader_id: 'dp_plain', delivery_day: '2023-10-29', delivery_hour: 2, delivery_period: '02-03A' }));
    expect((await jsonOf(a)).trade).toEqual(trade({ id: 'dp-pa', trader_id: 'dp_plain', delivery_day: '2023-10-29', delivery_hour: 2 }));
  });

  it.each([
    ['it does not start in delivery_hour', { delivery_hour: 9, delivery_period: '08:15-08:30' }, 'delivery_hour: 9 does not match delivery_period "08:15-08:30", which starts in hour 8'],
    ['it is not in the exchange notation', { delivery_period: '8:15-8:30' }, 'delivery_period: period "8:15-8:30" is not HH-HH, HH:MM-HH:MM, or HH-HHA/B'],
    ['it is not made of quarter hours', { delivery_period: '08:10-08:25' }, 'delivery_period: period "08:10-08:25" has an impossible time (hours 00-24, minutes in quarter hours)'],
    ['it lasts more than an hour', { delivery_period: '08:00-09:15' }, 'delivery_period: period "08:00-09:15" must end after it starts and last at most one hour'],
    ['it has a B on a day without a repeated hour', { delivery_period: '08-09B' }, 'delivery_period: period "08-09B": the B suffix is only for the hour that occurs twice on a 25-hour day, and 2023-02-06 has no repeated 08 hour'],
    ['the clocks skip it', { delivery_day: '2023-03-26', delivery_hour: 2, delivery_period: '02:15-02:30' }, 'delivery_period: hour 02 does not exist on 2023-03-26 in Europe/Berlin (the clocks skip it: that day has 23 hours)'],
    ['it is a number', { delivery_period: 815 }, 'delivery_period: must be a period string such as "08:15-08:30" or "02-03B"'],
    ['it is null', { delivery_period: null }, 'delivery_period: must be a period string such as "08:15-08:30" or "02-03B"'],
  ])('does answer 400 naming delivery_period when %s', async (_case, override, message) => {
    const res = await post(trade({ id: 'dp-bad', ...override }));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toBe(message);
  });

  it('does document delivery_period in the OpenAPI Trade as optional', async () => {
    const doc = await jsonOf(await server.request('/v1/openapi.json', { auth: null }));
    const trade = doc.components.schemas.Trade;
    expect(trade.properties.delivery_period).toMatchObject({ type: 'string', example: '08:15-08:30' });
    expect(trade.properties.delivery_period.description).toMatch(/02-03B/);
    expect(trade.required).not.toContain('delivery_period');
  });
});

describe('GET /v1/trades', () => {
  beforeAll(async () => {
    const trades = [
      trade({ id: 'f-1', trader_id: 'f_a', delivery_day: '2023-10-29', delivery_hour: 2 }),
      trade({ id: 'f-2', trader_id: 'f_a', delivery_day: '2023-10-30', delivery_hour: 0 }),
      trade({ id: 'f-3', trader_id: 'f_b', delivery_day: '2023-10-29', delivery_hour: 23, direction: 'sell', price: -1250, quantity: 0.1 }),
    ];
    const res = await server.request('/v1/trades/batch', { method: 'POST', json: trades });
    expect((await jsonOf(res)).stored).toBe(3);
  });

  it('filters by trader_id, by delivery_day and by both', async () => {
    const ids = async (q: string) => ((await jsonOf(await server.request(`/v1/trades?${q}`))) as { id: string }[]).map((t) => t.id);
    expect(await ids('trader_id=f_a')).toEqual(['f-1', 'f-2']);
    expect((await ids('delivery_day=2023-10-29')).filter((id) => id.startsWith('f-'))).toEqual(['f-1', 'f-3']);
    expect(await ids('trader_id=f_a&delivery_day=2023-10-29')).toEqual(['f-1']);
    expect(await ids('trader_id=f_c')).toEqual([]);
  });

  it('returns every trade without filters, negative prices and the 25-hour day included', async () => {
    const all = (await jsonOf(await server.request('/v1/trades'))) as { id: string; price: number; quantity: number; delivery_hour: number }[];
    expect(all.find((t) => t.id === 'f-3')).toMatchObject({ price: -1250, quantity: 0.1, delivery_hour: 23 });
    expect(all.find((t) => t.id === 'f-1')).toMatchObject({ delivery_hour: 2 });
    expect(all.length).toBeGreaterThanOrEqual(3);
  });

  it.each([
    ['delivery_day=2023-1-29', /^delivery_day: must be a calendar date YYYY-MM-DD \(got "2023-1-29"\)$/],
    ['trader_id=', /^trader_id: must not be empty$/],
    ['colour=red', /unknown field "colour"/],
    ['trader_id=a&trader_id=b', /^trader_id: given 2 times/],
  ])('answers 400 naming the parameter for %s', async (query, message) => {
    const res = await server.request(`/v1/trades?${query}`);
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toMatch(message);
  });

  it('shows a trader only her own trades, and refuses another trader_id', async () => {
    const alice = basic('alice', 'alice-password');
    expect((await post(trade({ id: 'al-1', trader_id: 'alice_t' }), alice)).status).toBe(200);
    const mine = await jsonOf(await server.request('/v1/trades', { auth: alice }));
    expect(mine.map((t: { id: string }) => t.id)).toEqual(['al-1']);
    const other = await server.request('/v1/trades?trader_id=f_a', { auth: alice });
    expect(other.status).toBe(403);
    expect((await post(trade({ id: 'al-2', trader_id: 'f_a' }), alice)).status).toBe(403);
  });

  it('lets an analyst read everything but add nothing', async () => {
    const ana = basic('ana', 'ana-password');
    expect((await jsonOf(await server.request('/v1/trades?trader_id=f_a', { auth: ana })))).toHaveLength(2);
    const res = await post(trade({ id: 'an-1' }), ana);
    expect(res.status).toBe(403);
    expect((await errorOf(res)).message).toBe('role analyst may not add trades');
  });
});

describe('POST /v1/trades/batch', () => {
  it('stores the valid items of a mixed batch and reports every item', async () => {
    const res = await server.request('/v1/trades/batch', {
      method: 'POST',
      json: [
        trade({ id: 'b-1', trader_id: 'b' }),
        trade({ id: 'b-2', trader_id: 'b', direction: 'short' }),
        trade({ id: 'b-3', trader_id: 'b', delivery_hour: 9 }),
        trade({ id: 'b-1', trader_id: 'b' }),
        trade({ id: 'b-3', trader_id: 'b', delivery_hour: 9, price: 1 }),
        'not a trade',
      ],
    });
    expect(res.status).toBe(200);
    const body = await jsonOf(res);
    expect(body).toMatchObject({ received: 6, stored: 2, duplicates: 1, conflicts: 1, invalid: 2 });
    expect(body.results.map((r: { status: string }) => r.status)).toEqual(['stored', 'invalid', 'stored', 'duplicate', 'conflict', 'invalid']);
    expect(body.results[1]).toMatchObject({ index: 1, id: 'b-2', message: expect.stringMatching(/^direction: must be "buy" or "sell"/) });
    expect(body.results[4].message).toMatch(/different price/);
    const stored = await jsonOf(await server.request('/v1/trades?trader_id=b'));
    expect(stored.map((t: { id: string }) => t.id)).toEqual(['b-1', 'b-3']);
  });

  it('accepts NDJSON and names the line of a broken one', async () => {
    const lines = [JSON.stringify(trade({ id: 'n-1', trader_id: 'n' })), '{"id": broken', '', JSON.stringify(trade({ id: 'n-2', trader_id: 'n', quantity: -2 }))];
    const res = await server.request('/v1/trades/batch', { method: 'POST', body: lines.join('\n'), headers: { 'content-type': 'application/x-ndjson' } });
    const body = await jsonOf(res);
    expect(body).toMatchObject({ received: 3, stored: 1, invalid: 2 });
    expect(body.results[1]).toMatchObject({ line: 2, status: 'invalid', message: expect.stringMatching(/^line 2: not valid JSON/) });
    expect(body.results[2]).toMatchObject({ line: 4, id: 'n-2', message: expect.stringMatching(/^quantity: must be greater than 0/) });
  });

  it('refuses more than 10,000 trades with 413 and a body that is not an array with 400', async () => {
    const many = Array.from({ length: 10_001 }, (_, i) => trade({ id: `m-${i}` }));
    const res = await server.request('/v1/trades/batch', { method: 'POST', json: many });
    expect(res.status).toBe(413);
    expect((await errorOf(res)).message).toBe('body: at most 10000 trades per batch (got 10001)');
    const notArray = await server.request('/v1/trades/batch', { method: 'POST', json: trade() });
    expect(notArray.status).toBe(400);
    expect((await errorOf(notArray)).message).toMatch(/^body: must be a JSON array/);
  });

  it('stores a full batch of 10,000 trades', async () => {
    const many = Array.from({ length: 10_000 }, (_, i) => trade({ id: `full-${i}`, trader_id: 'full', delivery_hour: i % 24, quantity: (i % 50) + 0.5 }));
    const body = await jsonOf(await server.request('/v1/trades/batch', { method: 'POST', json: many }));
    expect(body.stored).toBe(10_000);
    const stored = await jsonOf(await server.request('/v1/trades?trader_id=full'));
    expect(stored).toHaveLength(10_000);
  });
});

describe('service endpoints', () => {
  it('serves health, readiness, metrics, the OpenAPI document and the docs page', async () => {
    expect(await jsonOf(await server.request('/healthz', { auth: null }))).toEqual({ status: 'ok' });
    expect(await jsonOf(await server.request('/readyz', { auth: null }))).toEqual({ status: 'ready' });
    const metrics = await (await server.request('/metrics')).text();
    expect(metrics).toMatch(/powerdesk_trades_ingested_total\{source="api",outcome="stored"\} \d+/);
    const doc = await jsonOf(await server.request('/v1/openapi.json', { auth: null }));
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/trades', '/v1/trades/batch', '/v1/session']));
    expect(doc.components.schemas.Trade.required).toEqual(['id', 'price', 'quantity', 'direction', 'delivery_day', 'delivery_hour', 'trader_id', 'execution_time']);
    expect(doc.components.schemas.Trade.properties.price.type).toBe('integer');
    const docs = await (await server.request('/docs', { auth: null })).text();
    expect(docs).toContain('/v1/openapi.json'); // the interactive reference reads the document
  });

  it('answers unknown /v1 endpoints with 404 in the error shape', async () => {
    const res = await server.request('/v1/nope');
    expect(res.status).toBe(404);
    expect((await errorOf(res)).status_code).toBe(404);
  });
});

describe('persistence and first start', () => {
  it('keeps trades and users across a restart on the same DATA_DIR', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pd-restart-'));
    try {
      const first = await startTestServer({ dataDir });
      expect((await first.request('/v1/trades', { method: 'POST', json: trade({ id: 'keep-1', trader_id: 'keep' }) })).status).toBe(200);
      await first.close();
      // No ADMIN_* this time: the admin from the first start must still exist.
      const second = await startTestServer({ dataDir, env: { ADMIN_USER: '', ADMIN_PASSWORD: '' } });
      try {
        expect(await (await second.request('/v1/trades?trader_id=keep')).json()).toEqual([trade({ id: 'keep-1', trader_id: 'keep' })]);
      } finally {
        await second.close();
      }
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000); // two starts on disk and the admin's scrypt hashes

  it('refuses to start without users and without ADMIN_USER/ADMIN_PASSWORD, saying why', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pd-noadmin-'));
    try {
      await expect(startTestServer({ dataDir, env: { ADMIN_USER: '', ADMIN_PASSWORD: '' } })).rejects.toThrow(/there are no users yet: set ADMIN_USER and ADMIN_PASSWORD/);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses a second process on the same embedded DATA_DIR', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pd-lock-'));
    fs.writeFileSync(path.join(dataDir, 'powerdesk.lock'), String(process.ppid));
    try {
      await expect(startTestServer({ dataDir })).rejects.toThrow(/is in use by process/);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
