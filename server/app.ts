// The HTTP application: one Hono app per route group, mounted here; shared by main and tests.
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { routePath } from 'hono/route';
import { clientAddress, sessionRoutes, signInRoutes } from './auth/routes';
import { dashboardRoutes } from './dashboard/static';
import type { AppDeps, AppEnv } from './http/context';
import { ApiError, errorBody, sendError } from './http/errors';
import { writeGuard } from './http/csrf';
import { metricsHandler } from './http/metrics';
import { docsRoutes } from './http/docs';
import { pendingMigrations } from './db/migrate';
import { sql } from './db';
import { reportsRoutes } from './reports/routes';
import { importsRoutes, reconciliationsRoutes } from './importer/routes';
import { tradesRoutes } from './trades/routes';
import { ordersRoutes } from './orders/routes';
import { accountsRoutes, balanceRoutes, notificationsRoutes, portfolioRoutes, positionsRoutes, transactionsRoutes } from './accounts/routes';
import { feedRoutes } from './feed/routes';
import { referencePriceRoutes } from './market-data/routes';
import { algorithmRunsRoutes, icpsRoutes, matchesRoutes, meterReadingsRoutes, streamedUploads } from './meters/routes';

export const version = '0.1.0';

/** Route groups under /v1, mounted in this order by createApp; capabilities add theirs here. */
export type RouteGroup = { path: string; routes: (deps: AppDeps) => Hono<AppEnv> };

export const v1Groups: RouteGroup[] = [
  { path: '/session', routes: sessionRoutes },
  { path: '/trades', routes: tradesRoutes },
  { path: '/reports', routes: reportsRoutes },
  { path: '/feed', routes: feedRoutes },
  { path: '/reference-prices', routes: referencePriceRoutes },
  { path: '/imports', routes: importsRoutes },
  { path: '/reconciliations', routes: reconciliationsRoutes },
  { path: '/icps', routes: icpsRoutes },
  { path: '/matches', routes: matchesRoutes },
  { path: '/meter-readings', routes: meterReadingsRoutes },
  { path: '/algorithm-runs', routes: algorithmRunsRoutes },
  { path: '/orders', routes: ordersRoutes },
  { path: '/accounts', routes: accountsRoutes },
  { path: '/balance', routes: balanceRoutes },
  { path: '/positions', routes: positionsRoutes },
  { path: '/portfolio', routes: portfolioRoutes },
  { path: '/transactions', routes: transactionsRoutes },
  { path: '/notifications', routes: notificationsRoutes },
];

const bodiless = new Set(['GET', 'HEAD']);

export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use('*', async (c, next) => {
    const started = performance.now();
    await next();
    const route = routePath(c) || 'unmatched';
    const seconds = (performance.now() - started) / 1000;
    deps.metrics.httpRequests.inc({ method: c.req.method, route, status: String(c.res.status) });
    deps.metrics.httpDuration.observe({ method: c.req.method, route }, seconds);
    if (c.res.status >= 500) deps.log.error('request failed', { method: c.req.method, path: c.req.path, status: c.res.status });
    else deps.log.debug('request', { method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(seconds * 1000) });
  });

  app.onError((error, c) => {
    if (error instanceof ApiError) return sendError(c, error);
    deps.log.error('unhandled error', { method: c.req.method, path: c.req.path, error });
    return c.json(errorBody(500, 'internal error; the server log has the details'), 500);
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const problems: Record<string, string> = {};
    try {
      await deps.db.query(sql`SELECT 1`);
      const pending = await pendingMigrations(deps.db);
      if (pending.length) problems.migrations = `pending: ${pending.join(', ')}`;
    } catch (error) {
      problems.database = (error as Error).message;
    }
    for (const check of deps.readiness) {
      const problem = await check.check().catch((e: Error) => e.message);
      if (problem) problems[check.name] = problem;
    }
    const ready = Object.keys(problems).length === 0;
    return c.json({ status: ready ? 'ready' : 'not ready', ...(ready ? {} : { problems }) }, ready ? 200 : 503);
  });
  app.get('/metrics', (c) => metricsHandler(c, deps, clientAddress(c)));

  const v1 = new Hono<AppEnv>();
  const maxBody = 32 * 1024 * 1024;
  const tooLarge = (c: Context<AppEnv>) => c.json(errorBody(413, 'body: larger than 32 MiB'), 413);
  const limit = bodyLimit({ maxSize: maxBody, onError: tooLarge });
  // Bulk uploads (meter readings, algorithm results) are streamed in batches, never buffered.
  // GET and HEAD carry no body (the server does not read one): they skip the check. A body with
  // a Content-Length is judged by it, as bodyLimit would, without bodyLimit: it would build a
  // whole fetch Request from the Node request, where the handler reads the body straight from it.
  // Only a chunked body is counted as it arrives.
  v1.use('*', (c, next) => {
    if (bodiless.has(c.req.method) || (c.req.method === 'POST' && streamedUploads.some((p) => p.test(c.req.path)))) return next();
    const length = c.req.header('content-length');
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) return Number(length) > maxBody ? Promise.resolve(tooLarge(c)) : next();
    return limit(c, next);
  });
  v1.use('*', writeGuard()); // no cross-site writes, no bodies a form could send
  v1.get('/openapi.json', (c) => c.json(deps.openapi.document({ version })));
  v1.route('/session', signInRoutes(deps)); // POST /v1/session is the only unauthenticated write
  v1.use('*', async (c, next) => {
    if (c.req.path === '/v1/session' && c.req.method === 'POST') return next();
    const result = await deps.auth.authenticate({ authorization: c.req.header('authorization'), cookie: c.req.header('cookie') }, clientAddress(c));
    if (!result.ok) {
      // The dashboard's own requests get no Basic challenge: the browser would pop up its dialog.
      const challenge: Record<string, string> = c.req.header('x-requested-with') ? {} : { 'WWW-Authenticate': 'Basic realm="powerdesk", charset="UTF-8"' };
      const headers: Record<string, string> = result.status === 401 ? challenge : { 'Retry-After': String(result.retryAfterSeconds ?? 60) };
      throw new ApiError(result.status, result.message, headers);
    }
    c.set('user', result.user);
    return next();
  });
  for (const group of v1Groups) v1.route(group.path, group.routes(deps));
  app.route('/v1', v1);
  app.notFound((c) => c.json(errorBody(404, `no such endpoint: ${c.req.method} ${c.req.path}${c.req.path.startsWith('/v1') ? ' (see /docs)' : ''}`), 404));

  app.route('/docs', docsRoutes());
  // Last: the dashboard's static build and its SPA fallback for every other path.
  app.route('/', dashboardRoutes());
  return app;
}
