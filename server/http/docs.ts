// GET /docs: the interactive API reference (Swagger UI from the swagger-ui-dist package, its
// files served by this server: no CDN) over the OpenAPI document at /v1/openapi.json.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Hono } from 'hono';
import type { AppEnv } from './context';
import { errorBody } from './errors';

const distDir = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

/** The package's files the page needs, by the name served under /docs/assets/. */
const assets: Record<string, { file: string; type: string }> = {
  'swagger-ui.css': { file: 'swagger-ui.css', type: 'text/css; charset=utf-8' },
  'swagger-ui-bundle.js': { file: 'swagger-ui-bundle.js', type: 'text/javascript; charset=utf-8' },
  'favicon-32x32.png': { file: 'favicon-32x32.png', type: 'image/png' },
};

// The page's own script is a file too, so a strict Content-Security-Policy (no inline script) holds.
const init = `window.ui = SwaggerUIBundle({
  url: '/v1/openapi.json',
  dom_id: '#api',
  deepLinking: true,
  tryItOutEnabled: false,
  persistAuthorization: false,
  defaultModelsExpandDepth: 1,
  defaultModelExpandDepth: 3,
  displayRequestDuration: true,
  docExpansion: 'list',
  filter: true,
  withCredentials: true,
});
`;

// Swagger UI's layout, narrowed for a phone: long paths and code wrap instead of widening the page.
const css = `html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: #fff; }
.intro { font: 15px/1.5 system-ui, sans-serif; max-width: 1460px; margin: 0 auto; padding: 1rem 20px 0; color: #1b1f24; }
.intro h1 { margin: 0 0 .3rem; font-size: 1.5rem; }
.intro p { margin: .3rem 0; }
.intro code { background: #f2f4f7; padding: 0 .3em; border-radius: 3px; overflow-wrap: anywhere; }
.swagger-ui .opblock .opblock-summary-path, .swagger-ui .opblock .opblock-summary-description { word-break: break-word; overflow-wrap: anywhere; }
.swagger-ui .markdown p, .swagger-ui .renderedMarkdown p, .swagger-ui table td, .swagger-ui .info .description { overflow-wrap: anywhere; }
.swagger-ui pre, .swagger-ui .microlight { white-space: pre-wrap !important; word-break: break-word; }
.swagger-ui .model-box, .swagger-ui .model-container, .swagger-ui .responses-inner, .swagger-ui .table-container { max-width: 100%; overflow-x: auto; }
@media (max-width: 640px) {
  .intro { padding: .8rem 10px 0; }
  .swagger-ui .wrapper { padding: 0 10px; }
  .swagger-ui .opblock .opblock-summary { flex-wrap: wrap; }
  .swagger-ui .opblock .opblock-summary-method { min-width: 0; }
  .swagger-ui .info { margin: 20px 0; }
  .swagger-ui .info .title { font-size: 24px; }
  .swagger-ui table.parameters td, .swagger-ui table.parameters th { display: block; width: 100% !important; }
}
`;

const page = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>powerdesk API</title><link rel="icon" href="/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"><link rel="stylesheet" href="/docs/assets/page.css"></head>
<body><div class="intro"><h1>powerdesk API</h1>
<p>Every endpoint with its parameters, request and response bodies and examples; the document itself is
<a href="/v1/openapi.json">/v1/openapi.json</a> (OpenAPI 3.1). <code>/v1</code> needs HTTP Basic credentials
("Authorize") or the dashboard's session cookie, except where noted. Errors share one shape:
<code>{"status_code": 400, "message": "…"}</code>.</p></div>
<div id="api"><noscript>The interactive reference needs JavaScript; the document is <a href="/v1/openapi.json">/v1/openapi.json</a>.</noscript></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script><script src="/docs/assets/init.js"></script></body></html>`;

export function docsRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const cache = new Map<string, Uint8Array<ArrayBuffer>>();
  app.get('/', (c) => c.html(page, 200, { 'Cache-Control': 'no-cache' }));
  app.get('/assets/init.js', (c) => c.body(init, 200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-cache' }));
  app.get('/assets/page.css', (c) => c.body(css, 200, { 'Content-Type': 'text/css; charset=utf-8', 'Cache-Control': 'no-cache' }));
  app.get('/assets/:name', async (c) => {
    const asset = assets[c.req.param('name')];
    if (!asset) return c.json(errorBody(404, `no such file: ${c.req.path} (see /docs)`), 404);
    let body = cache.get(asset.file);
    if (!body) {
      body = new Uint8Array(await readFile(path.join(distDir, asset.file)));
      cache.set(asset.file, body);
    }
    return c.body(body, 200, { 'Content-Type': asset.type, 'Cache-Control': 'public, max-age=86400' });
  });
  return app;
}
