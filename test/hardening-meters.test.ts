// Meter uploads and streams against odd input, through the real app: all or nothing per upload
// with every bad line listed, years 0001-0099, the line length limit, parameters refused before
// the first byte, a stream broken off (not completed) by a failure after it, NUL characters and
// forged cursors.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../server/db';
import { encodeCursor } from '../server/meters/http';
import { maxLineChars } from '../server/meters/upload';
import { startTestServer, jsonOf, type TestServer } from './helpers/server';

let server: TestServer;

beforeAll(async () => {
  // UTC meter days: every whole half hour of every year is on the grid (Pacific/Auckland's
  // early years have a local mean time offset of +11:39:04).
  server = await startTestServer({ env: { METER_TZ: 'UTC' } });
}, 60_000);
afterAll(async () => { await server?.close(); });

const header = 'read_timestamp,interval_read,energy_flow_direction,icp_id';

function upload(body: string, type = 'text/csv') {
  return server.request('/v1/meter-readings', { method: 'POST', body, headers: { 'content-type': type } });
}

async function storedFor(icp: string): Promise<number> {
  const [row] = await server.deps.db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM meter_readings WHERE icp_id = ${icp}`);
  return row!.n;
}

/** `n` good readings of one ICP, half an hour apart from 2019-01-01. */
function goodLines(icp: string, n: number): string[] {
  const start = Date.UTC(2019, 0, 1);
  return Array.from({ length: n }, (_, i) => `${new Date(start + i * 1_800_000).toISOString()},1.5,X,${icp}`);
}

describe('meter uploads: all or nothing, every bad line listed', () => {
  it('refuses 25,000 good rows followed by a year-0000 row with a 400 naming that line, and stores none of them', async () => {
    const body = [header, ...goodLines('aon-1', 25_000), '0000-01-01 00:30:00+12,1.0,X,aon-1', ''].join('\n');
    const res = await upload(body);
    expect(res.status).toBe(400);
    const refusal = await jsonOf(res);
    expect(refusal).toMatchObject({ status_code: 400, received: 25_001, rejected: 1, errors_truncated: false });
    expect(refusal.errors).toEqual([{ line: 25_002, message: 'read_timestamp: "0000-01-01 00:30:00+12" is in year 0000, which does not exist (the years go from 1 BC to 0001)' }]);
    expect(refusal.message).toMatch(/^1 of 25001 lines are invalid; nothing was stored \(line 25002: /);
    expect(await storedFor('aon-1')).toBe(0);
    // The same rows without the bad one: all stored.
    const fixed = await upload([header, ...goodLines('aon-1', 25_000)].join('\n'));
    expect(fixed.status).toBe(200);
    expect(await jsonOf(fixed)).toMatchObject({ received: 25_000, stored: 25_000, rejected: 0 });
    expect(await storedFor('aon-1')).toBe(25_000);
  }, 120_000);

  it('lists the first 1000 bad lines and says how many there were', async () => {
    const lines = [header];
    for (let i = 0; i < 1500; i++) lines.push(...goodLines('aon-2', 1), `2019-01-01 00:30:00,1,X,aon-2`);
    const res = await upload(lines.join('\n'));
    expect(res.status).toBe(400);
    const refusal = await jsonOf(res);
    expect(refusal).toMatchObject({ received: 3000, rejected: 1500, errors_truncated: true });
    expect(refusal.errors).toHaveLength(1000);
    expect(refusal.errors[0]).toEqual({ line: 3, message: 'read_timestamp: "2019-01-01 00:30:00" has no UTC offset (e.g. +12 or Z)' });
    expect(refusal.errors[999].line).toBe(2001);
    expect(await storedFor('aon-2')).toBe(0);
  });

  it('refuses NDJSON uploads with a bad line the same way', async () => {
    const body = [
      JSON.stringify({ icp_id: 'aon-3', read_timestamp: '2019-03-01T00:00:00Z', interval_read: 1, energy_flow_direction: 'X' }),
      JSON.stringify({ icp_id: 'aon-3', read_timestamp: '2019-03-01T00:30:00Z', interval_read: 1, energy_flow_direction: 'Q' }),
    ].join('\n');
    const res = await upload(body, 'application/x-ndjson');
    expect(res.status).toBe(400);
    expect((await jsonOf(res)).errors).toEqual([{ line: 2, message: 'energy_flow_direction: must be X or I (got "Q")' }]);
    expect(await storedFor('aon-3')).toBe(0);
  });
});

describe('meter timestamps of every year', () => {
  const cases: { stamp: string; stored?: string; refused?: RegExp; period?: [string, string] }[] = [
    { stamp: '0001-01-01 00:30:00Z', stored: '0001-01-01T00:30:00.000Z', period: ['0001-01-01T00:00:00Z', '0001-01-02T00:00:00Z'] },
    { stamp: '0001-01-01 00:30:00+12', refused: /is before 0001-01-01T00:00:00Z in UTC/ }, // 1 BC in UTC
    { stamp: '9999-12-31 23:30:00-01', refused: /is after 9999-12-31T23:59:59Z in UTC/ },
    { stamp: '0050-03-01 12:00:00+00', stored: '0050-03-01T12:00:00.000Z' },
    { stamp: '0099-12-31 23:30:00Z', stored: '0099-12-31T23:30:00.000Z' },
    { stamp: '0004-02-29 00:00:00Z', stored: '0004-02-29T00:00:00.000Z' }, // year 4 is a leap year
    { stamp: '0100-02-29 00:00:00Z', refused: /is not a real date and time/ }, // year 100 is not
    { stamp: '0000-01-01 00:30:00+12', refused: /year 0000, which does not exist/ },
    { stamp: '9999-12-31 23:30:00Z', stored: '9999-12-31T23:30:00.000Z', period: ['9999-12-31T00:00:00Z', '9999-12-31T23:59:00Z'] },
  ];
  for (const [i, t] of cases.entries()) {
    it(`${t.stamp}: ${t.stored ? `stored as ${t.stored}` : 'refused'}`, async () => {
      const icp = `year-${i}`;
      const res = await upload([header, `${t.stamp},2.5,I,${icp}`].join('\n'));
      if (t.refused) {
        expect(res.status).toBe(400);
        expect((await jsonOf(res)).errors[0].message).toMatch(t.refused);
        expect(await storedFor(icp)).toBe(0);
        return;
      }
      expect(res.status, await res.clone().text()).toBe(200);
      const at = Date.parse(t.stored!);
      const [from, to] = t.period ?? [new Date(at - 86_400_000).toISOString(), new Date(at + 86_400_000).toISOString()];
      const read = await server.request(`/v1/icps/${icp}/readings?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
      expect(read.status).toBe(200);
      expect((await jsonOf(read)).map((r: { read_timestamp: string }) => r.read_timestamp)).toEqual([t.stored]);
    });
  }
});

describe('line length limit', () => {
  it('refuses a line longer than the limit with a 413 naming it, storing nothing', async () => {
    const body = [header, ...goodLines('long-1', 3), `2019-01-01T00:00:00Z,1,X,${'x'.repeat(5 * 1024 * 1024)}`, ...goodLines('long-1', 2)].join('\n');
    const res = await upload(body);
    expect(res.status).toBe(413);
    expect((await jsonOf(res)).message).toMatch(new RegExp(`^line 5: longer than ${maxLineChars} characters`));
    expect(await storedFor('long-1')).toBe(0);
  });

  it('refuses an endless last line without a line break the same way', async () => {
    const res = await server.request(`/v1/algorithm-runs/1/results`, { method: 'POST', body: 'y'.repeat(3 * maxLineChars), headers: { 'content-type': 'text/csv' } });
    // No run 1 yet: the run is checked first. With a run, the line.
    expect([404, 413]).toContain(res.status);
    const run = await server.request('/v1/algorithm-runs', { method: 'POST', json: { algorithm: 'a', version: '1', input_from: '2019-01-01', input_to: '2019-01-02' } });
    expect(run.status).toBe(201);
    const { id } = await jsonOf(run);
    const long = await server.request(`/v1/algorithm-runs/${id}/results`, { method: 'POST', body: 'y'.repeat(3 * maxLineChars), headers: { 'content-type': 'text/csv' } });
    expect(long.status).toBe(413);
    expect((await jsonOf(long)).message).toMatch(/^line 1: longer than/);
  });
});

/** GET with node:http: the status, the body received, and whether the response ended complete. */
function rawGet(path: string): Promise<{ status: number; body: string; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${server.url}${path}`, { headers: { authorization: `Basic ${Buffer.from('admin:admin-password').toString('base64')}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode!, body, complete: res.complete }));
      res.on('error', () => resolve({ status: res.statusCode!, body, complete: false }));
      res.on('aborted', () => resolve({ status: res.statusCode!, body, complete: false }));
    });
    req.on('error', reject);
  });
}

describe('streams', () => {
  const period = 'from=2019-01-01T00:00:00Z&to=2019-02-01T00:00:00Z';

  it.each([
    ['/v1/icps/%00/readings', /^icp_id: "\\u0000" must be/],
    ['/v1/icps/a%22b/readings', /^icp_id: "a\\"b" must be/],
    ['/v1/icps/%00/matches', /^icp_id:/],
    ['/v1/icps/%00/matches/daily', /^icp_id:/],
  ])('%s answers 400 before the first byte', async (path, message) => {
    const res = await rawGet(`${path}?${path.endsWith('daily') ? '' : period}`);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).message).toMatch(message);
  });

  it('breaks the connection off when the database fails after the first byte, never ending the JSON array', async () => {
    expect((await upload([header, ...goodLines('brk-1', 10)].join('\n'))).status).toBe(200);
    const complete = await rawGet(`/v1/icps/brk-1/readings?${period}`);
    expect(complete).toMatchObject({ status: 200, complete: true });
    expect(JSON.parse(complete.body)).toHaveLength(10);
    const db = server.deps.db;
    const query = db.query.bind(db);
    db.query = (async (q: Parameters<typeof db.query>[0]) => {
      if (JSON.stringify(q).includes('string_agg')) throw new Error('the database went away');
      return query(q);
    }) as typeof db.query;
    try {
      const broken = await rawGet(`/v1/icps/brk-1/readings?${period}`);
      expect(broken.status).toBe(200); // the status was out with the first byte
      expect(broken.complete).toBe(false);
      expect(broken.body.endsWith(']')).toBe(false);
      expect(() => JSON.parse(broken.body)).toThrow();
    } finally {
      db.query = query;
    }
  });
});

describe('NUL characters and forged cursors', () => {
  it.each([
    ['POST', '/v1/algorithm-runs', { algorithm: 'a\u0000b', version: '1', input_from: '2019-01-01', input_to: '2019-01-02' }, /^algorithm: must not contain the NUL character/],
    ['POST', '/v1/algorithm-runs', { algorithm: 'a', version: '1\u0000', input_from: '2019-01-01', input_to: '2019-01-02' }, /^version: must not contain/],
    ['POST', '/v1/algorithm-runs', { algorithm: 'a', version: '1', params: { depth: { k: ['ok', 'x\u0000'] } }, input_from: '2019-01-01', input_to: '2019-01-02' }, /^params\.depth\.k\.1: must not contain/],
    ['POST', '/v1/algorithm-runs', { algorithm: 'a', version: '1', params: { 'k\u0000': 1 }, input_from: '2019-01-01', input_to: '2019-01-02' }, /^params\.k\\u0000: a field name must not contain/],
    ['POST', '/v1/imports/1/finish', { status: 'failed', rows: 0, rejected: 0, message: 'oops\u0000' }, /^message: must not contain/],
    ['GET', '/v1/algorithm-runs?algorithm=%00', undefined, /^algorithm: must not contain/],
    ['GET', '/v1/matches?from=2019-01-01&to=2019-01-02&key=icp&role=%00', undefined, /^role: must not contain/],
    ['GET', '/v1/icps/ok/readings?from=2019-01-01%00&to=2019-01-02', undefined, /^from: must not contain/],
  ])('%s %s answers 400 naming the field', async (method, path, json, message) => {
    const res = await server.request(path, { method, json });
    expect(res.status).toBe(400);
    expect((await jsonOf(res)).message).toMatch(message);
  });

  it('refuses a forged readings cursor with a 400', async () => {
    const from = '2019-01-01T00:00:00.000Z';
    const to = '2019-02-01T00:00:00.000Z';
    const match = { icp: 'brk-1', from, to, dir: null };
    for (const forged of [{ at: 'yesterday', d: 'X' }, { at: '2019-01-01T00:00:00.000Z', d: "X' OR 1=1" }, { at: 5, d: 'X' }, { at: '2019-13-45T99:99:99.000Z', d: 'I' }]) {
      const cursor = encodeCursor({ k: 'readings', ...match, ...forged });
      const res = await server.request(`/v1/icps/brk-1/readings?from=${from}&to=${to}&limit=5&cursor=${cursor}`);
      expect(res.status, JSON.stringify(forged)).toBe(400);
      expect((await jsonOf(res)).message).toBe('cursor: damaged; use the "next" link as given');
    }
    // A real one still works.
    const first = await server.request(`/v1/icps/brk-1/readings?from=${from}&to=${to}&limit=5`);
    const next = /<([^>]+)>; rel="next"/.exec(first.headers.get('link') ?? '')![1]!;
    const second = await server.request(next);
    expect(second.status).toBe(200);
    expect(await jsonOf(second)).toHaveLength(5);
  });
});
