// Parts of the importer that need no database: the API client's retry rules against a real
// HTTP server, the deadline arithmetic, the CSV field conversion and the configuration.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../server/config';
import { ApiClient, ApiRequestError } from '../server/importer/api-client';
import { checkHeader, toTrade } from '../server/importer/csv-file';
import { expectedTradingDay } from '../server/importer/deadline';
import type { Logger } from '../server/log';

const servers: Server[] = [];
afterEach(() => { for (const s of servers.splice(0)) s.close(); });

function capturingLog(lines: { msg: string; fields?: Record<string, unknown> }[]): Logger {
  const log: Logger = {
    debug: () => {}, info: (msg, fields) => lines.push({ msg, fields }), warn: (msg, fields) => lines.push({ msg, fields }), error: (msg, fields) => lines.push({ msg, fields }),
    child: () => log,
  };
  return log;
}

async function serve(answers: { status: number; headers?: Record<string, string>; body: unknown }[]): Promise<{ url: string; hits: () => number }> {
  let hits = 0;
  const server = createServer((_req, res) => {
    const answer = answers[Math.min(hits, answers.length - 1)]!;
    hits += 1;
    res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
    res.end(JSON.stringify(answer.body));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits };
}

describe('ApiClient', () => {
  it('waits as long as Retry-After says when the API answers 429, then succeeds', async () => {
    const api = await serve([{ status: 429, headers: { 'retry-after': '1' }, body: { status_code: 429, message: 'slow down' } }, { status: 200, body: { ok: true } }]);
    const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
    const client = new ApiClient({ url: api.url, user: 'u', password: 'p', log: capturingLog(lines), initialDelayMs: 10 });
    expect(await client.request('GET', '/x')).toEqual({ ok: true });
    expect(api.hits()).toBe(2);
    expect(lines.find((l) => l.msg === 'API unavailable; retrying')?.fields).toMatchObject({ problem: '429 slow down', retry_in_ms: 1000 });
    expect(client.state.reachable).toBe(true);
  });

  it('retries 503 with backoff and gives up on a 400 at once with the API message', async () => {
    const flaky = await serve([{ status: 503, body: { status_code: 503, message: 'starting' } }, { status: 503, body: {} }, { status: 200, body: [1] }]);
    const client = new ApiClient({ url: flaky.url, user: 'u', password: 'p', log: capturingLog([]), initialDelayMs: 5 });
    expect(await client.request('POST', '/y', {})).toEqual([1]);
    expect(flaky.hits()).toBe(3);

    const bad = await serve([{ status: 400, body: { status_code: 400, message: 'file_name: must be epex_trades_YYYYMMDD.csv' } }]);
    const refusing = new ApiClient({ url: bad.url, user: 'u', password: 'p', log: capturingLog([]), initialDelayMs: 5 });
    const error = await refusing.request('POST', '/v1/imports', {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiRequestError);
    expect((error as Error).message).toBe('POST /v1/imports: 400 file_name: must be epex_trades_YYYYMMDD.csv');
    expect(bad.hits()).toBe(1);
  });
});

describe('deadline', () => {
  it('expects the previous trading day from the deadline on, and the day before until then', () => {
    expect(expectedTradingDay(new Date('2023-03-10T00:59:00Z'), 'Europe/Berlin', '02:00')).toBe('2023-03-08'); // 01:59 local
    expect(expectedTradingDay(new Date('2023-03-10T01:00:00Z'), 'Europe/Berlin', '02:00')).toBe('2023-03-09'); // 02:00 local
    expect(expectedTradingDay(new Date('2023-03-26T00:30:00Z'), 'Europe/Berlin', '02:00')).toBe('2023-03-24'); // 01:30 CET, DST day
    expect(expectedTradingDay(new Date('2023-03-26T01:00:00Z'), 'Europe/Berlin', '02:00')).toBe('2023-03-25'); // 03:00 CEST
  });
});

describe('CSV rows', () => {
  const columns = checkHeader(['id', 'price', 'quantity', 'direction', 'delivery_day', 'delivery_hour', 'trader_id', 'execution_time']);
  const row = (over: Partial<Record<string, string>> = {}) => {
    const r = { id: '1', price: '2050', quantity: '12.3', direction: 'buy', delivery_day: '2023-02-06', delivery_hour: '8', trader_id: 't', execution_time: '2023-02-06T06:13:45Z', ...over };
    return [r.id, r.price, r.quantity, r.direction, r.delivery_day, r.delivery_hour, r.trader_id, r.execution_time];
  };

  it('converts the text to the API types when every field is plainly valid', () => {
    expect(toTrade(row({ price: '-150', quantity: '.5', delivery_hour: '08' }), columns, 'Europe/Berlin')).toEqual({
      ok: true, trade: { id: '1', price: -150, quantity: 0.5, direction: 'buy', delivery_day: '2023-02-06', delivery_hour: 8, trader_id: 't', execution_time: '2023-02-06T06:13:45Z' },
    });
  });

  it('refuses numbers with trailing text, exponents or nothing at all instead of coercing them', () => {
    expect(toTrade(row({ price: '12abc' }), columns, 'Europe/Berlin')).toEqual({ ok: false, reason: 'price: must be an integer (got "12abc")' });
    expect(toTrade(row({ quantity: '1e3' }), columns, 'Europe/Berlin')).toEqual({ ok: false, reason: 'quantity: must be a decimal number (got "1e3")' });
    expect(toTrade(row({ delivery_hour: '' }), columns, 'Europe/Berlin')).toEqual({ ok: false, reason: 'delivery_hour: is empty' });
    expect(toTrade(row({ delivery_day: '2023-03-26', delivery_hour: '2' }), columns, 'Europe/Berlin')).toMatchObject({ ok: false, reason: expect.stringContaining('delivery_hour: hour 02 does not exist on 2023-03-26') });
  });

  it('refuses a header with a repeated column', () => {
    expect(() => checkHeader(['id', 'id', 'price', 'quantity', 'direction', 'delivery_day', 'delivery_hour', 'trader_id', 'execution_time'])).toThrow('line 1 (header): repeated column id; expected');
  });
});

describe('configuration', () => {
  it('refuses IMPORT_DIR without the API credentials and a deadline that is not HH:MM', () => {
    expect(() => loadConfig({ IMPORT_DIR: '/tmp/x' })).toThrow(ConfigError);
    expect(() => loadConfig({ IMPORT_DIR: '/tmp/x' })).toThrow(/API_USER: IMPORT_DIR is set: the importer uploads through the REST API and needs API_USER and API_PASSWORD/);
    expect(() => loadConfig({ IMPORT_DEADLINE: '2am' })).toThrow('IMPORT_DEADLINE: must be a local time HH:MM such as 02:00 (got "2am")');
    const ok = loadConfig({ IMPORT_DIR: 'imports', API_USER: 'importer', API_PASSWORD: 'secret-pw' });
    expect(ok.IMPORT_DIR).toMatch(/\/imports$/);
    expect(ok.IMPORT_DEADLINE).toBe('02:00');
  });
});
