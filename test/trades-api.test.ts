import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, trade, type TestServer } from './helpers/server';

let server: TestServer;
beforeAll(async () => { server = await startTestServer(); });
afterAll(async () => { await server?.close(); });

describe('POST /v1/trades', () => {
  it('stores a trade and shows it when queried by trader and day', async () => {
    const res = await server.request('/v1/trades', { method: 'POST', json: trade({ id: 'smoke-1', trader_id: 'smoke' }) });
    expect(res.status).toBe(200);
    const list = await (await server.request('/v1/trades?trader_id=smoke&delivery_day=2023-02-06')).json();
    expect(list).toEqual([trade({ id: 'smoke-1', trader_id: 'smoke' })]);
  });
});
