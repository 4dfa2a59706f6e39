// The operator's endpoints through the real app: /metrics (prom-client, for the admin and service
// roles or the bearer token only), the interactive /docs served from the server's own files, the
// JSON 404s of every server path, and "who am I" without credentials.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../server/auth/users';
import { loadConfig } from '../server/config';
import { basic, jsonOf, startTestServer, trade, type TestServer } from './helpers/server';

const token = 'metrics-token-0123456789abcdef';
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ env: { METRICS_TOKEN: token } });
  await addUser(server.deps.db, { username: 'prom', password: 'prom-password', role: 'service' });
  await addUser(server.deps.db, { username: 'lena', password: 'lena-password', role: 'analyst' });
  await addUser(server.deps.db, { username: 'tom', password: 'tom-password', role: 'trader', trader_id: 'tom_t' });
});
afterAll(async () => {
  await server?.close();
});

describe('/metrics', () => {
  it('answers only the bearer token and the admin and service users', async () => {
    const anonymous = await server.request('/metrics', { auth: null });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer realm="powerdesk metrics"/);
    expect((await jsonOf(anonymous)).message).toMatch(/\/metrics needs the bearer token METRICS_TOKEN or an admin or service user/);
    const wrongToken = await server.request('/metrics', { auth: 'Bearer not-the-token-at-all' });
    expect(wrongToken.status).toBe(401);
    expect((await jsonOf(wrongToken)).message).toBe('authorization: wrong bearer token for /metrics');
    for (const [who, auth] of [['analyst', basic('lena', 'lena-password')], ['trader', basic('tom', 'tom-password')]] as const) {
      const refused = await server.request('/metrics', { auth });
      expect(refused.status).toBe(403);
      expect((await jsonOf(refused)).message).toBe(`role ${who} may not read /metrics: admin or service only`);
    }
    for (const auth of [`Bearer ${token}`, basic('prom', 'prom-password'), undefined]) {
      const res = await server.request('/metrics', { auth });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(await res.text()).toMatch(/^# HELP powerdesk_http_requests_total /m);
    }
  });

  it('keeps the metric names and labels, and adds the process and event-loop metrics', async () => {
    expect((await server.request('/v1/trades', { method: 'POST', json: trade({ id: 'metrics-1', trader_id: 'metrics_t' }) })).status).toBe(200);
    expect((await server.request('/v1/trades', { method: 'POST', json: trade({ id: 'metrics-2', trader_id: 'metrics_t', price: 'x' }) })).status).toBe(400);
    const text = await (await server.request('/metrics', { auth: `Bearer ${token}` })).text();
    expect(text).toMatch(/^# TYPE powerdesk_http_requests_total counter$/m);
    expect(text).toMatch(/^powerdesk_http_requests_total\{method="POST",route="\/v1\/trades",status="200"\} [1-9]\d*$/m);
    expect(text).toMatch(/^# TYPE powerdesk_http_request_duration_seconds histogram$/m);
    expect(text).toMatch(/^powerdesk_http_request_duration_seconds_bucket\{le="0\.005",method="POST",route="\/v1\/trades"\} \d+$/m);
    expect(text).toMatch(/^powerdesk_http_request_duration_seconds_count\{method="POST",route="\/v1\/trades"\} [1-9]\d*$/m);
    expect(text).toMatch(/^powerdesk_trades_ingested_total\{source="api",outcome="stored"\} [1-9]\d*$/m);
    expect(text).toMatch(/^powerdesk_trades_ingested_total\{source="api",outcome="invalid"\} [1-9]\d*$/m);
    expect(text).toMatch(/^process_cpu_seconds_total \d/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_p99_seconds \d/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
  });

  it('refuses a METRICS_TOKEN too short to be a secret, naming the variable', () => {
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN: must be at least 16 characters/);
  });
});

describe('/docs', () => {
  it('serves the interactive reference and its scripts from the server itself', async () => {
    const page = await server.request('/docs', { auth: null });
    expect(page.status).toBe(200);
    const html = await page.text();
    const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(sources).toEqual(expect.arrayContaining(['/docs/assets/swagger-ui-bundle.js', '/docs/assets/init.js', '/docs/assets/swagger-ui.css', '/v1/openapi.json']));
    // Nothing from another host: every script and style is this server's.
    expect(sources.filter((s) => /^(https?:)?\/\//.test(s))).toEqual([]);
    for (const [asset, type, min] of [['swagger-ui-bundle.js', 'text/javascript', 500_000], ['swagger-ui.css', 'text/css', 50_000], ['init.js', 'text/javascript', 50], ['page.css', 'text/css', 50]] as const) {
      const res = await server.request(`/docs/assets/${asset}`, { auth: null });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain(type);
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(min);
    }
    expect(await (await server.request('/docs/assets/init.js', { auth: null })).text()).toContain("url: '/v1/openapi.json'");
  });

  it('answers an unknown path under a server prefix with a JSON 404, never the dashboard page', async () => {
    for (const p of ['/docs/assets/nothing.js', '/docs/nothing', '/metrics/x', '/healthz/x', '/readyz/', '/docs/']) {
      const res = await server.request(p, { auth: null });
      expect(res.status, p).toBe(404);
      expect(res.headers.get('content-type'), p).toMatch(/^application\/json/);
      expect((await jsonOf(res)).status_code).toBe(404);
    }
    // Socket.IO answers its own path (400 JSON for an unknown transport): not the dashboard either.
    const socketIo = await server.request('/socket.io/x', { auth: null });
    expect(socketIo.headers.get('content-type')).toMatch(/^application\/json/);
    const v1 = await server.request('/v1/nothing/here');
    expect(v1.status).toBe(404);
    expect(await jsonOf(v1)).toEqual({ status_code: 404, message: 'no such endpoint: GET /v1/nothing/here (see /docs)' });
  });
});

describe('GET /v1/session', () => {
  it('says signed_in false without credentials, and 401 for wrong ones', async () => {
    const nobody = await server.request('/v1/session', { auth: null });
    expect(nobody.status).toBe(200);
    expect(await jsonOf(nobody)).toEqual({ signed_in: false });
    expect((await server.request('/v1/session', { auth: basic('tom', 'wrong') })).status).toBe(401);
    expect((await server.request('/v1/session', { auth: null, headers: { cookie: 'pd_session=ended' } })).status).toBe(401);
    expect(await jsonOf(await server.request('/v1/session', { auth: basic('tom', 'tom-password') }))).toEqual({ username: 'tom', role: 'trader', trader_id: 'tom_t', desk: false, signed_in: true });
    const doc = await jsonOf(await server.request('/v1/openapi.json', { auth: null }));
    expect(doc.paths['/v1/session'].get.responses['200'].content['application/json'].schema.anyOf).toHaveLength(2);
  });
});
