// How the server serves the built dashboard: assets with the right type and cache, the SPA
// fallback, nothing outside the build directory, server paths never swallowed, a clear page
// when the dashboard is not built. Against a real build directory in a temp folder.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dashboardRoutes } from '../server/dashboard/static';

const dir = mkdtempSync(path.join(tmpdir(), 'powerdesk-web-'));
const build = path.join(dir, 'build');
mkdirSync(path.join(build, '_app/immutable/entry'), { recursive: true });
writeFileSync(path.join(build, 'index.html'), '<!doctype html><title>shell</title>');
writeFileSync(path.join(build, '_app/immutable/entry/start.abc123.js'), 'export {}');
writeFileSync(path.join(build, '_app/version.json'), '{"version":"1"}');
writeFileSync(path.join(dir, 'secret.txt'), 'not for the web');

const app = dashboardRoutes(build);
const get = (p: string) => app.request(p);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dashboard static files', () => {
  it('does serve hashed assets with a one-year immutable cache and their content type', async () => {
    const response = await get('/_app/immutable/entry/start.abc123.js');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(response.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(await response.text()).toBe('export {}');
  });

  it('does serve unhashed files with revalidation', async () => {
    const response = await get('/_app/version.json');
    expect(response.headers.get('cache-control')).toBe('no-cache');
    expect(await response.json()).toEqual({ version: '1' });
  });

  it('does answer deep links with the SPA shell when the path is a page', async () => {
    for (const p of ['/', '/signin', '/some/deep/link']) {
      const response = await get(p);
      expect(response.status, p).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await response.text()).toContain('<title>shell</title>');
    }
  });

  it('does answer 404 for a missing asset instead of the shell', async () => {
    const response = await get('/_app/immutable/entry/gone.js');
    expect(response.status).toBe(404);
  });

  it('does not serve files outside the build directory whatever the path says', async () => {
    for (const p of ['/../secret.txt', '/%2e%2e/secret.txt', '/_app/%2e%2e/%2e%2e/secret.txt']) {
      const response = await get(p);
      expect(await response.text(), p).not.toContain('not for the web');
    }
  });

  it('does leave API and Socket.IO paths to the server with a JSON 404', async () => {
    for (const p of ['/v1/nothing', '/socket.io/', '/metrics/x']) {
      const response = await get(p);
      expect(response.status, p).toBe(404);
      expect(await response.json()).toMatchObject({ status_code: 404 });
    }
  });

  it('does say "dashboard not built: run npm run build" when there is no build', async () => {
    const response = await dashboardRoutes(path.join(dir, 'missing')).request('/');
    expect(response.status).toBe(503);
    expect(await response.text()).toContain('dashboard not built: run npm run build');
  });
});
