import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../server/auth/users';
import { sql } from '../server/db';
import { compressOldChunks } from '../server/meters/compression';
import { hoursOfDay } from '../server/time/market-time';
import { basic, startTestServer, type TestServer } from './helpers/server';

let server: TestServer;
const password = 'meter-test-password';
const auth = { trader: basic('m-trader', password), analyst: basic('m-analyst', password), service: basic('m-service', password) };

beforeAll(async () => {
  server = await startTestServer();
  const db = server.deps.db;
  await addUser(db, { username: 'm-trader', password, role: 'trader', trader_id: 'mt1' });
  await addUser(db, { username: 'm-analyst', password, role: 'analyst' });
  await addUser(db, { username: 'm-service', password, role: 'service' });
});
afterAll(async () => { await server?.close(); });

const sampleReadings = `read_timestamp,interval_read,energy_flow_direction,icp_id
2018-06-14 00:30:00+12,1.343,X,33
2018-06-17 13:00:00+12,1.013,X,33
2018-06-23 09:00:00+12,1.336,X,33
2018-06-23 11:00:00+12,1.203,X,33
2018-06-21 07:30:00+12,2.569,X,33
`;

function post(path: string, body: string, type: string, authHeader?: string) {
  return server.request(path, { method: 'POST', body, headers: { 'content-type': type }, auth: authHeader });
}

async function json<T = any>(res: Response, status = 200): Promise<T> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  return JSON.parse(text) as T;
}

async function expect400(path: string, field: string) {
  const res = await server.request(path);
  const body = await json<{ status_code: number; message: string }>(res, 400);
  expect(body.status_code).toBe(400);
  // An unknown parameter has no field prefix: the message names it in quotes.
  if (field.startsWith('"')) expect(body.message).toBe(`unknown field ${field}`);
  else expect(body.message.startsWith(`${field}:`), body.message).toBe(true);
  return body.message;
}

describe('meter readings', () => {
  it('stores the sample rows with their +12 offsets and returns them in time order as UTC', async () => {
    const result = await json(await post('/v1/meter-readings', sampleReadings, 'text/csv'));
    expect(result).toMatchObject({ received: 5, stored: 5, replaced: 0, unchanged: 0, rejected: 0, errors: [] });
    const rows = await json(await server.request('/v1/icps/33/readings?from=2018-06-14&to=2018-06-24'));
    expect(rows).toEqual([
      { icp_id: '33', read_timestamp: '2018-06-13T12:30:00.000Z', interval_read: '1.343', energy_flow_direction: 'X' },
      { icp_id: '33', read_timestamp: '2018-06-17T01:00:00.000Z', interval_read: '1.013', energy_flow_direction: 'X' },
      { icp_id: '33', read_timestamp: '2018-06-20T19:30:00.000Z', interval_read: '2.569', energy_flow_direction: 'X' },
      { icp_id: '33', read_timestamp: '2018-06-22T21:00:00.000Z', interval_read: '1.336', energy_flow_direction: 'X' },
      { icp_id: '33', read_timestamp: '2018-06-22T23:00:00.000Z', interval_read: '1.203', energy_flow_direction: 'X' },
    ]);
    // [from, to) is half-open, on instants too: the first reading is at 2018-06-13T12:30Z.
    const later = await json(await server.request('/v1/icps/33/readings?from=2018-06-13T12:30:00.001Z&to=2018-06-17T01:00:00Z'));
    expect(later).toEqual([]);
  });

  it('replaces a corrected reading instead of duplicating it, and counts stored, replaced and unchanged rows', async () => {
    const first = `read_timestamp,interval_read,energy_flow_direction,icp_id\n2019-01-01 00:30:00+13,1.000,X,corr-1\n2019-01-01 01:00:00+13,2.000,X,corr-1\n2019-01-01 01:00:00+13,0.5,I,corr-1\n`;
    expect(await json(await post('/v1/meter-readings', first, 'text/csv'))).toMatchObject({ stored: 3, replaced: 0, unchanged: 0 });
    const again = `interval_read,icp_id,read_timestamp,energy_flow_direction\n1.000,corr-1,2019-01-01 00:30:00+13,X\n2.250,corr-1,2019-01-01 01:00:00+13,X\n0.7,corr-1,2018-12-31T12:00:00Z,I\n`;
    expect(await json(await post('/v1/meter-readings', again, 'text/csv'))).toMatchObject({ received: 3, stored: 0, replaced: 2, unchanged: 1 });
    const rows = await json<any[]>(await server.request('/v1/icps/corr-1/readings?from=2019-01-01&to=2019-01-02'));
    expect(rows.map((r) => [r.read_timestamp, r.energy_flow_direction, r.interval_read])).toEqual([
      ['2018-12-31T11:30:00.000Z', 'X', '1.000'],
      ['2018-12-31T12:00:00.000Z', 'I', '0.7'],
      ['2018-12-31T12:00:00.000Z', 'X', '2.250'],
    ]);
    const [daily] = await server.deps.db.query<{ kwh: string; readings: number }>(sql`SELECT kwh::text AS kwh, readings::int AS readings FROM meter_readings_daily WHERE icp_id = 'corr-1' AND direction = 'X'`);
    expect(daily).toEqual({ kwh: '3.250', readings: 2 });
  });

  it('refuses an upload with bad lines, listing each with its line number and reason, and stores none of it', async () => {
    const body = [
      'read_timestamp,interval_read,energy_flow_direction,icp_id',
      '2019-02-01 00:30:00+13,1.1,X,bad-lines',
      '2019-02-01 01:00:00,1.1,X,bad-lines',
      '2019-02-01 01:30:00+13,abc,X,bad-lines',
      '2019-02-01 02:00:00+13,1.1,Q,bad-lines',
      '2019-02-30 02:30:00+13,1.1,X,bad-lines',
      '2019-02-01 03:00:00+13,1.1,X,',
      '',
      '2019-02-01 03:30:00+13,-1,X,bad-lines',
      '2019-02-01 04:00:00+13,"2.5",X,bad-lines',
    ].join('\n');
    const result = await json(await post('/v1/meter-readings', body, 'text/csv'), 400);
    expect(result).toMatchObject({ status_code: 400, received: 8, rejected: 6, errors_truncated: false });
    expect(result.message).toMatch(/^6 of 8 lines are invalid; nothing was stored \(line 3: read_timestamp: /);
    expect(result.errors.map((e: { line: number; message: string }) => [e.line, e.message.split(':')[0]])).toEqual([
      [3, 'read_timestamp'], [4, 'interval_read'], [5, 'energy_flow_direction'], [6, 'read_timestamp'], [7, 'icp_id'], [9, 'interval_read'],
    ]);
    expect(result.errors[0].message).toContain('no UTC offset');
    expect(await json<any[]>(await server.request('/v1/icps/bad-lines/readings?from=2019-02-01&to=2019-02-03'))).toEqual([]);
  });

  it('does refuse readings off the half-hour grid with their line and reason, and stores the upload once they are fixed', async () => {
    const body = [
      'read_timestamp,interval_read,energy_flow_direction,icp_id',
      '2019-02-02 00:30:00+13,1.1,X,grid-1',
      '2019-02-02 00:15:00+13,1.1,X,grid-1',
      '2019-02-02 01:00:20+13,1.1,X,grid-1',
      '2019-02-01T12:00:00Z,1.1,X,grid-1',
    ].join('\n');
    const result = await json(await post('/v1/meter-readings', body, 'text/csv'), 400);
    expect(result).toMatchObject({ received: 4, rejected: 2 });
    expect(result.errors).toEqual([
      { line: 3, message: 'read_timestamp: "2019-02-02 00:15:00+13" is not on the 30-minute grid of meter intervals (they start at :00 or :30 local time in Pacific/Auckland, without seconds)' },
      { line: 4, message: 'read_timestamp: "2019-02-02 01:00:20+13" is not on the 30-minute grid of meter intervals (they start at :00 or :30 local time in Pacific/Auckland, without seconds)' },
    ]);
    expect(await json<any[]>(await server.request('/v1/icps/grid-1/readings?from=2019-02-01&to=2019-02-03'))).toEqual([]);
    const fixed = body.split('\n').filter((_l, i) => i !== 2 && i !== 3).join('\n');
    expect(await json(await post('/v1/meter-readings', fixed, 'text/csv'))).toMatchObject({ received: 2, stored: 2, rejected: 0 });
    const rows = await json<any[]>(await server.request('/v1/icps/grid-1/readings?from=2019-02-01&to=2019-02-03'));
    expect(rows.map((r) => r.read_timestamp)).toEqual(['2019-02-01T11:30:00.000Z', '2019-02-01T12:00:00.000Z']);
  });

  it('accepts NDJSON uploads with numbers or strings for interval_read', async () => {
    const body = [
      JSON.stringify({ icp_id: 'nd-1', read_timestamp: '2019-03-01T00:00:00Z', interval_read: 0.25, energy_flow_direction: 'X' }),
      JSON.stringify({ icp_id: 'nd-1', read_timestamp: '2019-03-01T00:30:00Z', interval_read: '0.125', energy_flow_direction: 'I' }),
      '{not json',
      JSON.stringify([1, 2]),
    ].join('\n');
    const result = await json(await post('/v1/meter-readings', body, 'application/x-ndjson'), 400);
    expect(result).toMatchObject({ received: 4, rejected: 2 });
    expect(result.errors.map((e: { line: number }) => e.line)).toEqual([3, 4]);
    expect(await json(await post('/v1/meter-readings', body.split('\n').slice(0, 2).join('\n'), 'application/x-ndjson'))).toMatchObject({ received: 2, stored: 2 });
    const rows = await json<any[]>(await server.request('/v1/icps/nd-1/readings?from=2019-03-01T00:00:00Z&to=2019-03-02T00:00:00Z'));
    expect(rows.map((r) => r.interval_read)).toEqual(['0.25', '0.125']);
  });

  it('streams NDJSON and CSV when asked by Accept, with the same rows as JSON', async () => {
    const lines = ['read_timestamp,interval_read,energy_flow_direction,icp_id'];
    for (let i = 0; i < 96; i++) lines.push(`2019-04-0${1 + Math.floor(i / 48)} ${String(Math.floor((i % 48) / 2)).padStart(2, '0')}:${i % 2 ? '30' : '00'}:00+13,${(i / 1000).toFixed(3)},X,fmt-1`);
    expect((await json(await post('/v1/meter-readings', lines.join('\n'), 'text/csv'))).stored).toBe(96);
    const path = '/v1/icps/fmt-1/readings?from=2019-04-01&to=2019-04-03';
    const asJson = await json<any[]>(await server.request(path));
    expect(asJson).toHaveLength(96);
    const ndRes = await server.request(path, { headers: { accept: 'application/x-ndjson' } });
    expect(ndRes.headers.get('content-type')).toContain('application/x-ndjson');
    const nd = (await ndRes.text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(nd).toEqual(asJson);
    const csvRes = await server.request(path, { headers: { accept: 'text/csv' } });
    expect(csvRes.headers.get('content-type')).toContain('text/csv');
    const csv = (await csvRes.text()).trim().split('\n');
    expect(csv[0]).toBe('read_timestamp,interval_read,energy_flow_direction,icp_id');
    expect(csv.slice(1)).toEqual(asJson.map((r) => `${r.read_timestamp},${r.interval_read},${r.energy_flow_direction},${r.icp_id}`));
  });

  it('pages through readings with limit and the next link until the end', async () => {
    const path = '/v1/icps/fmt-1/readings?from=2019-04-01&to=2019-04-03';
    const all = await json<any[]>(await server.request(path));
    const seen: any[] = [];
    let next: string | null = `${path}&limit=40`;
    let pages = 0;
    while (next) {
      const res = await server.request(next);
      seen.push(...(await json<any[]>(res)));
      const link = res.headers.get('link');
      next = link ? /^<([^>]+)>; rel="next"$/.exec(link)![1]! : null;
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(all);
  });

  it('still reads and corrects readings after their chunks are compressed', async () => {
    const body = `read_timestamp,interval_read,energy_flow_direction,icp_id\n2017-03-01 00:30:00+13,1.5,X,cmp-1\n2017-03-01 01:00:00+13,2.5,X,cmp-1\n`;
    expect((await json(await post('/v1/meter-readings', body, 'text/csv'))).stored).toBe(2);
    const compressed = await compressOldChunks(server.deps.db, 30);
    expect(compressed.find((c) => c.table === 'meter_readings')!.chunks).toBeGreaterThan(0);
    const [chunk] = await server.deps.db.query<{ is_compressed: boolean }>(sql`
      SELECT is_compressed FROM timescaledb_information.chunks WHERE hypertable_name = 'meter_readings' AND range_start <= '2017-02-28T12:00:00Z' AND range_end > '2017-02-28T12:00:00Z'`);
    expect(chunk!.is_compressed).toBe(true);
    const fix = `read_timestamp,interval_read,energy_flow_direction,icp_id\n2017-03-01 01:00:00+13,2.75,X,cmp-1\n`;
    expect(await json(await post('/v1/meter-readings', fix, 'text/csv'))).toMatchObject({ stored: 0, replaced: 1 });
    const rows = await json<any[]>(await server.request('/v1/icps/cmp-1/readings?from=2017-03-01&to=2017-03-02'));
    expect(rows.map((r) => r.interval_read)).toEqual(['1.5', '2.75']);
  });

  it('lets a body larger than the 32 MiB API limit through to the streamed upload', async () => {
    const body = `read_timestamp,interval_read,energy_flow_direction,icp_id\n${'\n'.repeat(33 * 1024 * 1024)}2019-05-01 00:30:00+12,1,X,big-1\n`;
    expect(await json(await post('/v1/meter-readings', body, 'text/csv'))).toMatchObject({ stored: 1, rejected: 0 });
    const trades = await server.request('/v1/trades/batch', { method: 'POST', body: ' '.repeat(33 * 1024 * 1024), headers: { 'content-type': 'application/json' } });
    expect(trades.status).toBe(413);
  });
});

const runBody = (from: string, to: string, version: string) => ({ algorithm: 'matcher', version, params: { threshold: 0.5 }, input_from: from, input_to: to });

/** The algorithm's output format: quoted fields, spaces after commas, typographic quotes on the role. */
function algorithmOutput(rows: [string, string, string, string, string][]) {
  return `icp_id, matched_amount, read_date, read_time, publish_datetime,buyer_seller\n${rows.map(([icp, amount, date, time, role]) => `${icp}, "${amount}", "${date}", "${time}", "2018-06-27 16:39:36.057601+12", “${role}”`).join('\n')}\n`;
}

async function newRun(from: string, to: string, version: string): Promise<number> {
  const run = await json(await server.request('/v1/algorithm-runs', { method: 'POST', json: runBody(from, to, version), auth: auth.service }), 201);
  expect(run).toMatchObject({ status: 'draft', published_at: null, algorithm: 'matcher', version });
  return run.id as number;
}

function nextDay(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
}

async function publish(id: number) {
  return json(await server.request(`/v1/algorithm-runs/${id}/publish`, { method: 'POST', auth: auth.service }));
}

describe('algorithm runs', () => {
  it('stores the algorithm output format and reads it back in local NZ days', async () => {
    const id = await newRun('2018-06-13', '2018-06-27', 'sample');
    const refused = await json(await post(`/v1/algorithm-runs/${id}/results`, algorithmOutput([
      ['101', '0.0000', '2018-06-13', '00:00:00', 'buyer'],
      ['100', '0.0040', '2018-06-13', '00:00:00', 'seller'],
      ['101', '0.0100', '2018-06-13', '00:30:00', 'buyer'],
      ['101', '0.0200', '2018-06-14', '23:30:00', 'buyer'],
      ['101', '0.0200', '2018-07-14', '23:30:00', 'buyer'],
    ]), 'text/csv', auth.service), 400);
    expect(refused).toMatchObject({ received: 5, rejected: 1 });
    expect(refused.errors[0]).toMatchObject({ line: 6 });
    expect(refused.errors[0].message).toContain('outside the run');
    const upload = await json(await post(`/v1/algorithm-runs/${id}/results`, algorithmOutput([
      ['101', '0.0000', '2018-06-13', '00:00:00', 'buyer'],
      ['100', '0.0040', '2018-06-13', '00:00:00', 'seller'],
      ['101', '0.0100', '2018-06-13', '00:30:00', 'buyer'],
      ['101', '0.0200', '2018-06-14', '23:30:00', 'buyer'],
    ]), 'text/csv', auth.service));
    expect(upload).toMatchObject({ received: 4, stored: 4, rejected: 0 });
    await publish(id);
    const byInterval = await json<any[]>(await server.request('/v1/icps/101/matches?from=2018-06-13&to=2018-06-15&role=buyer&bucket=interval'));
    expect(byInterval.map((r) => [r.start, r.local, r.matched_amount, r.run_ids])).toEqual([
      ['2018-06-12T12:00:00Z', '2018-06-13T00:00', '0.0000', [id]],
      ['2018-06-12T12:30:00Z', '2018-06-13T00:30', '0.0100', [id]],
      ['2018-06-14T11:30:00Z', '2018-06-14T23:30', '0.0200', [id]],
    ]);
    const byDay = await json<any[]>(await server.request('/v1/icps/101/matches?from=2018-06-13&to=2018-06-15&role=buyer'));
    expect(byDay.map((r) => [r.local, r.matched_amount, r.intervals])).toEqual([['2018-06-13', '0.0100', 2], ['2018-06-14', '0.0200', 1]]);
    const month = await json<any[]>(await server.request('/v1/icps/101/matches?from=2018-06-01&to=2018-07-01&bucket=month'));
    expect(month.map((r) => [r.local, r.role, r.matched_amount])).toEqual([['2018-06', 'buyer', '0.0300']]);
    const seller = await json<any[]>(await server.request('/v1/icps/100/matches?from=2018-06-13&to=2018-06-14&role=seller'));
    expect(seller.map((r) => r.matched_amount)).toEqual(['0.0040']);
  });

  it('serves the latest published run, keeps the older one readable by id and hides an unpublished one', async () => {
    const period = ['2020-01-01', '2020-01-03'] as const;
    const r1 = await newRun(...period, 'v1');
    const r2 = await newRun(...period, 'v2');
    const r3 = await newRun(...period, 'v3-draft');
    const rows = (amount: string) => algorithmOutput([['900', amount, '2020-01-01', '10:00:00', 'buyer'], ['900', amount, '2020-01-02', '10:00:00', 'seller']]);
    await json(await post(`/v1/algorithm-runs/${r1}/results`, rows('1.0000'), 'text/csv', auth.service));
    await json(await post(`/v1/algorithm-runs/${r2}/results`, rows('2.0000'), 'text/csv', auth.service));
    await json(await post(`/v1/algorithm-runs/${r3}/results`, rows('3.0000'), 'text/csv', auth.service));
    const current = async () => (await json<any[]>(await server.request('/v1/icps/900/matches?from=2020-01-01&to=2020-01-03'))).map((r) => [r.role, r.matched_amount, r.run_ids]);
    expect(await current()).toEqual([]);
    await publish(r1);
    expect(await current()).toEqual([['buyer', '1.0000', [r1]], ['seller', '1.0000', [r1]]]);
    const published2 = await publish(r2);
    expect(published2.status).toBe('published');
    expect(await current()).toEqual([['buyer', '2.0000', [r2]], ['seller', '2.0000', [r2]]]);
    const older = await json<any[]>(await server.request(`/v1/icps/900/matches?from=2020-01-01&to=2020-01-03&run=${r1}`));
    expect(older.map((r) => r.matched_amount)).toEqual(['1.0000', '1.0000']);
    const draft = await json<any[]>(await server.request(`/v1/icps/900/matches?from=2020-01-01&to=2020-01-03&run=${r3}`));
    expect(draft.map((r) => r.matched_amount)).toEqual(['3.0000', '3.0000']);
    const byRun = await json<any[]>(await server.request('/v1/matches?from=2020-01-01&to=2020-01-03&key=run'));
    expect(byRun.map((r) => [r.run_id, r.role, r.matched_amount])).toEqual([[r2, 'buyer', '2.0000'], [r2, 'seller', '2.0000']]);
    const list = await json(await server.request('/v1/algorithm-runs?status=draft'));
    expect(list.results.map((r: { id: number }) => r.id)).toContain(r3);
    expect(list.results.map((r: { id: number }) => r.id)).not.toContain(r1);
    expect(await json(await server.request(`/v1/algorithm-runs/${r1}`))).toMatchObject({ id: r1, status: 'published', result_rows: 2 });
  });

  it('takes each interval from the latest published run that covers it when runs overlap in part', async () => {
    const wide = await newRun('2020-02-01', '2020-02-04', 'wide');
    const narrow = await newRun('2020-02-02', '2020-02-03', 'narrow');
    const days = ['2020-02-01', '2020-02-02', '2020-02-03'];
    await json(await post(`/v1/algorithm-runs/${wide}/results`, algorithmOutput(days.map((d) => ['901', '1.0000', d, '12:00:00', 'buyer'])), 'text/csv', auth.service));
    await json(await post(`/v1/algorithm-runs/${narrow}/results`, algorithmOutput([['901', '5.0000', '2020-02-02', '12:00:00', 'buyer']]), 'text/csv', auth.service));
    await publish(narrow);
    await publish(wide); // published last: wins everywhere it covers
    let rows = await json<any[]>(await server.request('/v1/icps/901/matches?from=2020-02-01&to=2020-02-04'));
    expect(rows.map((r) => [r.local, r.matched_amount])).toEqual([['2020-02-01', '1.0000'], ['2020-02-02', '1.0000'], ['2020-02-03', '1.0000']]);
    const again = await newRun('2020-02-02', '2020-02-03', 'narrow-2');
    await json(await post(`/v1/algorithm-runs/${again}/results`, algorithmOutput([['901', '7.0000', '2020-02-02', '12:00:00', 'buyer']]), 'text/csv', auth.service));
    await publish(again);
    rows = await json<any[]>(await server.request('/v1/icps/901/matches?from=2020-02-01&to=2020-02-04'));
    expect(rows.map((r) => [r.local, r.matched_amount, r.run_ids])).toEqual([['2020-02-01', '1.0000', [wide]], ['2020-02-02', '7.0000', [again]], ['2020-02-03', '1.0000', [wide]]]);
    const byIcp = await json<any[]>(await server.request('/v1/matches?from=2020-02-01&to=2020-02-04&key=icp'));
    expect(byIcp.filter((r) => r.icp_id === '901')).toEqual([{ icp_id: '901', role: 'buyer', matched_amount: '9.0000', intervals: 3 }]);
    // Not day-aligned: answered from the raw results, same rule.
    const partial = await json<any[]>(await server.request('/v1/matches?from=2020-02-02T00:00:00%2B13:00&to=2020-02-02T12:00:01%2B13:00&key=role'));
    expect(partial).toEqual([{ role: 'buyer', matched_amount: '7.0000', intervals: 1, icps: 1 }]);
  });

  it('keeps daily pages consistent while a new run is published between pages', async () => {
    const r1 = await newRun('2021-03-01', '2021-03-11', 'p1');
    const days = Array.from({ length: 10 }, (_, i) => `2021-03-${String(i + 1).padStart(2, '0')}`);
    await json(await post(`/v1/algorithm-runs/${r1}/results`, algorithmOutput(days.flatMap((d) => [['902', '1.0000', d, '08:00:00', 'buyer'], ['902', '2.0000', d, '09:00:00', 'seller']] as [string, string, string, string, string][])), 'text/csv', auth.service));
    await publish(r1);
    const first = await json(await server.request('/v1/icps/902/matches/daily?limit=6'));
    expect(first.results.map((r: any) => `${r.day}/${r.role}`)).toEqual(['2021-03-01/buyer', '2021-03-01/seller', '2021-03-02/buyer', '2021-03-02/seller', '2021-03-03/buyer', '2021-03-03/seller']);
    // A new run covering the whole period is published: the pages already started stay on r1.
    const r2 = await newRun('2021-03-01', '2021-03-11', 'p2');
    await json(await post(`/v1/algorithm-runs/${r2}/results`, algorithmOutput(days.map((d) => ['902', '9.0000', d, '08:00:00', 'buyer'])), 'text/csv', auth.service));
    await publish(r2);
    const rest: any[] = [];
    let next = first.next as string | null;
    while (next) {
      const page = await json(await server.request(next));
      rest.push(...page.results);
      next = page.next;
    }
    const all = [...first.results, ...rest];
    expect(all).toHaveLength(20);
    expect(all.every((r) => r.run_ids.length === 1 && r.run_ids[0] === r1)).toBe(true);
    expect(new Set(all.map((r) => `${r.day}/${r.role}`)).size).toBe(20);
    // A fresh start sees r2 (buyer only, seller rows are gone in r2's output).
    const fresh = await json(await server.request('/v1/icps/902/matches/daily?limit=100'));
    expect(fresh.results.map((r: any) => [r.role, r.matched_amount, r.run_ids[0]])).toEqual(days.map(() => ['buyer', '9.0000', r2]));
    const diff = await json(await server.request(`/v1/algorithm-runs/${r1}/diff/${r2}?limit=15`));
    expect(diff.results).toHaveLength(15);
    expect(diff.results[0]).toEqual({ icp_id: '902', day: '2021-03-01', role: 'buyer', a_amount: '1.0000', b_amount: '9.0000', delta: '8.0000', a_intervals: 1, b_intervals: 1, change: 'changed' });
    expect(diff.results[1]).toMatchObject({ day: '2021-03-01', role: 'seller', a_amount: '2.0000', b_amount: null, delta: '-2.0000', change: 'removed' });
    const diff2 = await json(await server.request(diff.next));
    expect(diff2.results).toHaveLength(5);
    expect(diff2.next).toBeNull();
  });

  it('refuses results for a published run, a second publication and unknown runs', async () => {
    const id = await newRun('2022-01-01', '2022-01-02', 'x');
    await publish(id);
    const late = await post(`/v1/algorithm-runs/${id}/results`, algorithmOutput([['1', '1', '2022-01-01', '00:00:00', 'buyer']]), 'text/csv', auth.service);
    expect((await json(late, 409)).message).toMatch(/^id: run \d+ is published/);
    expect((await json(await server.request(`/v1/algorithm-runs/${id}/publish`, { method: 'POST' }), 409)).message).toContain('already published');
    expect((await json(await server.request('/v1/algorithm-runs/999999'), 404)).message).toBe('id: no algorithm run 999999');
    expect((await json(await server.request('/v1/icps/1/matches?from=2022-01-01&to=2022-01-02&run=999999'), 404)).message).toContain('run:');
  });

  it.each([
    ['autumn', '2018-04-01', 25, '2018-03-31T11:00:00Z'],
    ['spring', '2018-09-30', 23, '2018-09-29T12:00:00Z'],
  ])('does bucket the %s DST day %s into its %i real hours, each labelled with its offset', async (_season, day, hours, midnight) => {
    const slots = hoursOfDay(day, 'Pacific/Auckland');
    const id = await newRun(day, nextDay(day), `hours-${day}`);
    // Every half hour of the day, both roles, written with its offset (the repeated times need it).
    const rows: [string, string, string, string, string][] = [];
    slots.forEach((slot, i) => {
      for (const minute of ['00', '30']) {
        const time = `${String(slot.hour).padStart(2, '0')}:${minute}:00${slot.offset}`;
        rows.push(['hb-1', `${i + 1}.${minute === '00' ? '1' : '2'}000`, day, time, 'buyer'], ['hb-1', '0.5000', day, time, 'seller']);
      }
    });
    expect(await json(await post(`/v1/algorithm-runs/${id}/results`, algorithmOutput(rows), 'text/csv', auth.service))).toMatchObject({ stored: rows.length, rejected: 0 });
    await publish(id);
    const buckets = await json<any[]>(await server.request(`/v1/icps/hb-1/matches?from=${day}&to=${nextDay(day)}&bucket=hour&role=buyer`));
    expect(buckets).toHaveLength(hours);
    // Consecutive UTC hours from local midnight, two intervals each, none before its bucket's start.
    expect(buckets.map((b) => b.start)).toEqual(slots.map((_, i) => new Date(Date.parse(midnight) + i * 3_600_000).toISOString().replace('.000Z', 'Z')));
    expect(buckets.every((b) => b.intervals === 2)).toBe(true);
    expect(buckets.map((b) => b.matched_amount)).toEqual(slots.map((_, i) => `${2 * (i + 1)}.3000`));
    expect(buckets.map((b) => [b.local.slice(11), b.offset])).toEqual(slots.map((s) => [`${String(s.hour).padStart(2, '0')}:00`, s.offset]));
    const intervals = await json<any[]>(await server.request(`/v1/icps/hb-1/matches?from=${day}&to=${nextDay(day)}&bucket=interval&role=buyer`));
    expect(intervals).toHaveLength(2 * hours);
    intervals.forEach((iv, i) => {
      const bucket = buckets[Math.floor(i / 2)]!;
      expect(Date.parse(iv.start) - Date.parse(bucket.start), `${iv.start} in ${bucket.start}`).toBe((i % 2) * 1_800_000);
    });
    const sellers = await json<any[]>(await server.request(`/v1/icps/hb-1/matches?from=${day}&to=${nextDay(day)}&bucket=hour`));
    expect(sellers.filter((b) => b.role === 'seller').map((b) => b.matched_amount)).toEqual(slots.map(() => '1.0000'));
    // The day bucket is the whole day, whatever its length.
    const whole = await json<any[]>(await server.request(`/v1/icps/hb-1/matches?from=${day}&to=${nextDay(day)}&role=seller`));
    expect(whole.map((b) => [b.local, b.intervals, b.offset])).toEqual([[day, 2 * hours, slots[0]!.offset]]);
  });

  it('does refuse results off the half-hour grid, naming read_time', async () => {
    const id = await newRun('2019-05-01', '2019-05-02', 'grid');
    const result = await json(await post(`/v1/algorithm-runs/${id}/results`, algorithmOutput([['g1', '1', '2019-05-01', '10:00:00', 'buyer'], ['g1', '1', '2019-05-01', '10:45:00', 'buyer']]), 'text/csv', auth.service), 400);
    expect(result).toMatchObject({ received: 2, rejected: 1 });
    expect(result.errors[0]).toEqual({ line: 3, message: 'read_time: 2019-05-01 10:45:00 is not on the 30-minute grid of meter intervals (they start at :00 or :30 local time in Pacific/Auckland, without seconds)' });
  });

  it('rejects a read_time that the NZ DST change repeats unless it carries its offset', async () => {
    const id = await newRun('2019-04-06', '2019-04-08', 'dst');
    const body = algorithmOutput([['d1', '1', '2019-04-07', '02:30:00', 'buyer'], ['d1', '1', '2019-04-07', '02:30:00+12', 'buyer'], ['d1', '2', '2019-04-07', '02:30:00+13', 'buyer']]);
    const result = await json(await post(`/v1/algorithm-runs/${id}/results`, body, 'text/csv', auth.service), 400);
    expect(result).toMatchObject({ received: 3, rejected: 1 });
    expect(result.errors[0].message).toContain('occurs twice');
    const withOffsets = algorithmOutput([['d1', '1', '2019-04-07', '02:30:00+12', 'buyer'], ['d1', '2', '2019-04-07', '02:30:00+13', 'buyer']]);
    expect(await json(await post(`/v1/algorithm-runs/${id}/results`, withOffsets, 'text/csv', auth.service))).toMatchObject({ stored: 2 });
  });
});

describe('validation and roles', () => {
  it('answers every bad period, enum, limit and cursor with a 400 naming the parameter', async () => {
    await expect400('/v1/icps/33/readings?to=2018-06-15', 'from');
    await expect400('/v1/icps/33/readings?from=2018-06-14', 'to');
    await expect400('/v1/icps/33/readings?from=yesterday&to=2018-06-15', 'from');
    await expect400('/v1/icps/33/readings?from=2018-02-30&to=2018-06-15', 'from');
    await expect400('/v1/icps/33/readings?from=2018-06-14T00:00:00&to=2018-06-15', 'from');
    expect(await expect400('/v1/icps/33/readings?from=2018-06-15&to=2018-06-14', 'to')).toContain('after from');
    await expect400('/v1/icps/33/readings?from=2018-06-15&to=2018-06-15', 'to');
    await expect400('/v1/icps/33/readings?from=2018-06-14&to=2018-06-15&direction=Z', 'direction');
    await expect400('/v1/icps/33/readings?from=2018-06-14&to=2018-06-15&limit=0', 'limit');
    await expect400('/v1/icps/33/readings?from=2018-06-14&to=2018-06-15&limit=abc', 'limit');
    await expect400('/v1/icps/33/readings?from=2018-06-14&to=2018-06-15&limit=100001', 'limit');
    await expect400('/v1/icps/33/readings?from=2018-06-14&to=2018-06-15&cursor=garbage', 'cursor');
    await expect400('/v1/icps/33/readings?from=2018-06-14&to=2018-06-15&form=x', '"form"');
    await expect400('/v1/icps/33/matches?from=2018-06-14&to=2018-06-15&role=broker', 'role');
    await expect400('/v1/icps/33/matches?from=2018-06-14&to=2018-06-15&bucket=week', 'bucket');
    await expect400('/v1/icps/33/matches?from=2018-06-14&to=2018-06-15&run=-1', 'run');
    await expect400('/v1/icps/33/matches?from=2018-06-16&to=2018-06-15', 'to');
    await expect400('/v1/icps/33/matches/daily?limit=1001', 'limit');
    await expect400('/v1/icps/33/matches/daily?cursor=eyJrIjoicmVhZGluZ3MifQ', 'cursor');
    await expect400('/v1/matches?from=2018-06-14&to=2018-06-15', 'key');
    await expect400('/v1/matches?from=2018-06-14&to=2018-06-15&key=day', 'key');
    await expect400('/v1/matches?from=2018-06-15&to=2018-06-14&key=icp', 'to');
    await expect400('/v1/algorithm-runs?status=final', 'status');
    await expect400('/v1/algorithm-runs/abc', 'id');
    await expect400('/v1/algorithm-runs/1/diff/x', 'b');
  });

  it('rejects a cursor of another ICP with 400', async () => {
    const res = await server.request('/v1/icps/fmt-1/readings?from=2019-04-01&to=2019-04-03&limit=10');
    const next = /^<([^>]+)>/.exec(res.headers.get('link')!)![1]!;
    const cursor = new URL(next, server.url).searchParams.get('cursor')!;
    expect(await expect400(`/v1/icps/other/readings?from=2019-04-01&to=2019-04-03&limit=10&cursor=${cursor}`, 'cursor')).toContain('another query');
  });

  it('answers bad uploads and bad run definitions with a 400 naming the field', async () => {
    let res = await post('/v1/meter-readings', sampleReadings, 'text/plain');
    expect((await json(res, 400)).message).toMatch(/^content-type:/);
    res = await post('/v1/meter-readings', 'read_timestamp,interval_read,icp_id\n2018-06-14 00:30:00+12,1,33\n', 'text/csv');
    expect((await json(res, 400)).message).toContain('missing energy_flow_direction');
    res = await post('/v1/meter-readings', '', 'text/csv');
    expect((await json(res, 400)).message).toMatch(/^body:/);
    const bad = async (body: unknown, field: string) => {
      const r = await server.request('/v1/algorithm-runs', { method: 'POST', json: body });
      expect((await json(r, 400)).message).toMatch(field.startsWith('"') ? `unknown field ${field}` : new RegExp(`^${field}:`));
    };
    await bad({ ...runBody('2018-06-13', '2018-06-27', 'v'), algorithm: '' }, 'algorithm');
    await bad({ version: 'v', input_from: '2018-06-13', input_to: '2018-06-27' }, 'algorithm');
    await bad(runBody('2018-06-27', '2018-06-13', 'v'), 'input_to');
    await bad(runBody('13/06/2018', '2018-06-27', 'v'), 'input_from');
    await bad({ ...runBody('2018-06-13', '2018-06-27', 'v'), params: [1] }, 'params');
    await bad({ ...runBody('2018-06-13', '2018-06-27', 'v'), extra: 1 }, '"extra"');
  });

  it('lets analysts and the service read, only service and admin write, and refuses traders', async () => {
    const read = '/v1/icps/33/readings?from=2018-06-14&to=2018-06-15';
    expect((await server.request(read, { auth: auth.trader })).status).toBe(403);
    expect((await server.request('/v1/icps/33/matches?from=2018-06-14&to=2018-06-15', { auth: auth.trader })).status).toBe(403);
    expect((await server.request('/v1/icps/33/matches/daily', { auth: auth.trader })).status).toBe(403);
    expect((await server.request('/v1/matches?from=2018-06-14&to=2018-06-15&key=role', { auth: auth.trader })).status).toBe(403);
    expect((await server.request('/v1/algorithm-runs', { auth: auth.trader })).status).toBe(403);
    expect((await post('/v1/meter-readings', sampleReadings, 'text/csv', auth.trader)).status).toBe(403);
    expect((await server.request(read, { auth: auth.analyst })).status).toBe(200);
    expect((await server.request(read, { auth: auth.service })).status).toBe(200);
    expect((await server.request(read, { auth: null })).status).toBe(401);
    const analystUpload = await post('/v1/meter-readings', sampleReadings, 'text/csv', auth.analyst);
    expect((await json(analystUpload, 403)).message).toContain('role analyst may not upload');
    expect((await server.request('/v1/algorithm-runs', { method: 'POST', json: runBody('2018-06-13', '2018-06-27', 'v'), auth: auth.analyst })).status).toBe(403);
  });

  it('registers every meter operation in the OpenAPI document', async () => {
    const doc = await json(await server.request('/v1/openapi.json'));
    for (const [path, method] of [
      ['/v1/icps/{icp_id}/readings', 'get'], ['/v1/icps/{icp_id}/matches', 'get'], ['/v1/icps/{icp_id}/matches/daily', 'get'], ['/v1/matches', 'get'],
      ['/v1/meter-readings', 'post'], ['/v1/algorithm-runs', 'post'], ['/v1/algorithm-runs', 'get'], ['/v1/algorithm-runs/{id}', 'get'],
      ['/v1/algorithm-runs/{id}/results', 'post'], ['/v1/algorithm-runs/{id}/publish', 'post'], ['/v1/algorithm-runs/{a}/diff/{b}', 'get'],
    ]) expect(doc.paths[path!]?.[method!], `${method} ${path}`).toBeDefined();
  });

  it('runs every example analyst query in sql/examples against the schema', async () => {
    const dir = path.resolve(__dirname, '../sql/examples');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.sql'));
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const file of files) {
      // psql variables (:icp, :a, :b) get sample values.
      const text = fs.readFileSync(path.join(dir, file), 'utf8').replaceAll(':icp', "'33'").replaceAll(':a', '1').replaceAll(':b', '2');
      await expect(server.deps.db.execScript(text, { transaction: false }), file).resolves.toBeUndefined();
    }
  });

  it('creates the read-only analyst_ro role with SELECT on the meter tables and aggregates only', async () => {
    const rows = await server.deps.db.query<{ t: string; sel: boolean; ins: boolean }>(sql`
      SELECT t, has_table_privilege('analyst_ro', t, 'SELECT') AS sel, has_table_privilege('analyst_ro', t, 'INSERT') AS ins
      FROM unnest(ARRAY['meter_readings', 'match_results', 'algorithm_runs', 'meter_readings_daily', 'match_results_daily', 'match_results_current', 'algorithm_runs_published']) AS t`);
    expect(rows.every((r) => r.sel && !r.ins)).toBe(true);
    const [users] = await server.deps.db.query<{ sel: boolean }>(sql`SELECT has_table_privilege('analyst_ro', 'users', 'SELECT') AS sel`);
    expect(users!.sel).toBe(false);
  });
});
