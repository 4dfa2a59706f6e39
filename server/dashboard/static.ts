// Serves the built dashboard (web/build) at /: hashed assets cached for a year, every other
// non-API path answered by the SPA shell (index.html), and a clear page when it is not built.
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hono } from 'hono';
import type { AppEnv } from '../http/context';
import { errorBody } from '../http/errors';

export const defaultWebBuildDir = fileURLToPath(new URL('../../web/build', import.meta.url));

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
  '.map': 'application/json; charset=utf-8',
};

/** Paths that belong to the server, never to the SPA fallback. */
const serverPaths = /^\/(v1|socket\.io|docs|healthz|readyz|metrics)(\/|$)/;

const notBuiltPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>powerdesk: dashboard not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem">
<h1>powerdesk</h1><p><strong>dashboard not built: run npm run build</strong> (or <code>npm run demo</code>), then reload.</p>
<p>The API is up: see <a href="/docs">/docs</a>.</p></body></html>`;

export function dashboardRoutes(buildDir: string = defaultWebBuildDir): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const root = path.resolve(buildDir);

  app.on(['GET', 'HEAD'], '*', async (c) => {
    let urlPath: string;
    try {
      urlPath = decodeURIComponent(c.req.path);
    } catch {
      return c.json(errorBody(400, `path: ${JSON.stringify(c.req.path.slice(0, 200))} has a malformed %-escape`), 400);
    }
    if (serverPaths.test(urlPath)) return c.json(errorBody(404, `no such endpoint: ${c.req.method} ${c.req.path} (see /docs)`), 404);
    const index = path.join(root, 'index.html');
    if (!existsSync(index)) return c.html(notBuiltPage, 503, { 'Cache-Control': 'no-store' });

    // Browsers and tools ask for /favicon.ico by name: the dashboard's icon is an SVG.
    const candidate = path.resolve(root, `.${urlPath === '/favicon.ico' ? '/favicon.svg' : urlPath}`);
    // Nothing outside the build directory, whatever the path says.
    if (candidate.startsWith(root + path.sep)) {
      const info = await stat(candidate).catch(() => undefined);
      if (info?.isFile()) {
        const immutable = urlPath.startsWith('/_app/immutable/');
        return c.body(new Uint8Array(await readFile(candidate)), 200, {
          'Content-Type': contentTypes[path.extname(candidate).toLowerCase()] ?? 'application/octet-stream',
          'Cache-Control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
        });
      }
    }
    // A missing asset is a 404; a missing page is the SPA's to route.
    if (path.extname(urlPath) && urlPath !== '/index.html') return c.text(`not found: ${urlPath}`, 404);
    return c.body(new Uint8Array(await readFile(index)), 200, { 'Content-Type': contentTypes['.html']!, 'Cache-Control': 'no-cache' });
  });
  return app;
}
