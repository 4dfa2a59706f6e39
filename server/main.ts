// The one place that wires the capabilities together: config -> database -> migrations -> users
// -> HTTP app (+ Socket.IO and background parts) on one port.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import { createApp } from './app';
import { Authenticator } from './auth/authenticator';
import { ensureAdmin } from './auth/users';
import { systemClock, type Clock } from './clock';
import { ConfigError, loadConfig, type Config } from './config';
import { openDb, type Db } from './db';
import { migrate } from './db/migrate';
import type { AppDeps } from './http/context';
import { MetricsRegistry } from './http/metrics';
import { OpenApiRegistry } from './http/openapi';
import { Importer } from './importer/importer';
import { createLogger, type Logger } from './log';
import { ReportCache } from './reports/cache';
import { PnlFreshness } from './reports/freshness';
import { startFeedGateway, type FeedGateway } from './feed';
import { startReferencePoller } from './market-data';
import { startLiveHub, type LiveHub } from './live/hub';
import { applyMeterChunkInterval, defaultChunkDays } from './meters/chunks';
import { startCompressionTask } from './meters/compression';
import { createTrading, orderHandlers, startDispatch } from './orders';
import { startHealthGauges } from './http/health-gauges';

/** How long a stopping server lets requests in flight finish before it cuts their connections. */
const drainGraceMs = 5000;

export interface RunningServer {
  url: string;
  port: number;
  deps: AppDeps;
  httpServer: Server;
  /** Socket.IO on the same port: deal, pnl and feed pushes. */
  hub: LiveHub;
  /** The nightly file importer, when IMPORT_DIR is set. */
  importer?: Importer;
  /** The exchange gateway (its session sends to the exchange), when EXCHANGE_WS_URL or EXCHANGE_AMQP_URL is set. */
  gateway?: FeedGateway;
  close(): Promise<void>;
}

export interface StartOptions {
  clock?: Clock;
  log?: Logger;
  /** Use this database instead of opening one from the config (tests share an instance). */
  db?: Db;
  /** The given embedded `db` is this server's alone (a benchmark's), as one it opened itself would be. */
  soleUser?: boolean;
  /** Embedded in memory instead of under DATA_DIR (tests). */
  inMemory?: boolean;
}

export async function start(config: Config, options: StartOptions = {}): Promise<RunningServer> {
  const log = options.log ?? createLogger(config.LOG_LEVEL);
  const clock = options.clock ?? systemClock;
  const db = options.db ?? (await openDb({ databaseUrl: config.DATABASE_URL, dataDir: options.inMemory ? undefined : config.DATA_DIR }));
  const closers: (() => Promise<void>)[] = [];
  if (!options.db) closers.push(() => db.close());
  try {
    const result = await migrate(db, { log: (m) => log.info('migration', { file: m.replace('applied ', '') }) });
    log.info('database ready', { kind: db.kind, dataDir: db.kind === 'embedded' ? (options.inMemory ? 'memory' : config.DATA_DIR) : undefined, applied: result.applied.length });
    await applyMeterChunkInterval(db, config.METER_CHUNK_DAYS ?? defaultChunkDays(db));
    const admin = await ensureAdmin(db, { user: config.ADMIN_USER, password: config.ADMIN_PASSWORD });
    if (admin) log.info('created the first admin', { username: admin.username });

    // Past days materialised, late deals refreshed: reports are exact within a tick of a commit.
    const freshness = new PnlFreshness(db, config.MARKET_TZ, clock, log);
    await freshness.start();
    closers.unshift(() => freshness.close());
    // Finished reports are kept only where no other process can write: an embedded database this
    // process opened itself (it admits one process at a time), or was given as its alone.
    const reports = new ReportCache(db, config.MARKET_TZ, { freshness, log, singleProcess: (!options.db || options.soleUser === true) && db.kind === 'embedded' });
    await reports.start();
    closers.unshift(() => reports.close());
    const deps: AppDeps = {
      db, tz: config.MARKET_TZ, clock, log,
      metrics: new MetricsRegistry({ token: config.METRICS_TOKEN }),
      auth: new Authenticator(db, clock),
      openapi: new OpenApiRegistry(),
      cookieSecure: config.COOKIE_SECURE,
      readiness: [],
      pnlFreshness: freshness,
      reports,
      meterTz: config.METER_TZ,
    };
    deps.trading = createTrading(config, deps);
    closers.unshift(deps.trading.startExpirySweep(config.ORDER_EXPIRY_SWEEP_MS));
    closers.unshift(startHealthGauges({ db, metrics: deps.metrics, clock, log, tz: config.MARKET_TZ, importDeadline: config.IMPORT_DEADLINE }));
    if (config.METER_COMPRESS_EVERY_MINUTES) closers.push(startCompressionTask(db, log, config.METER_COMPRESS_AFTER_DAYS, config.METER_COMPRESS_EVERY_MINUTES));
    const app = createApp(deps);
    const httpServer = await new Promise<Server>((resolve) => {
      const s = serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }, () => resolve(s as Server));
    });
    // Draining: from the first step on no new connection (a balancer sends it to another server;
    // a websocket upgrade accepted now would outlive the closed hub) and no new request on a
    // kept-alive one; requests in flight finish, up to a grace period after which their
    // connections are cut. The hub's sockets close meanwhile (Socket.IO waits for this too).
    const drained = new Promise<void>((resolve) => httpServer.once('close', () => resolve()));
    let draining: (() => void) | undefined;
    const stopAccepting = () => {
      if (draining) return;
      httpServer.close();
      const idle = setInterval(() => httpServer.closeIdleConnections?.(), 20);
      const cut = setTimeout(() => httpServer.closeAllConnections?.(), drainGraceMs);
      draining = () => { clearInterval(idle); clearTimeout(cut); };
    };
    closers.unshift(async () => {
      stopAccepting();
      await drained;
      draining?.();
    });
    const hub = await startLiveHub(httpServer, deps, freshness);
    closers.unshift(() => hub.close()); // before the HTTP server: sockets first, then connections
    // Background parts, each started only when its env variable is set; closed before the database.
    // Message kinds of other capabilities join the gateway's session here (handlers by kind).
    const gateway = await startFeedGateway(config, deps, orderHandlers(deps.trading));
    if (gateway) closers.unshift(await startDispatch(config, deps, deps.trading, gateway));
    for (const part of [gateway, await startReferencePoller(config, deps)]) {
      if (part) closers.unshift(() => part.close());
    }
    closers.unshift(async () => stopAccepting());
    const port = (httpServer.address() as AddressInfo).port;
    const url = `http://localhost:${port}`;
    log.info('listening', { url, docs: `${url}/docs` });

    // The importer uploads through the REST API like any client: here its own port (API_URL
    // may point elsewhere), with the service user's credentials.
    let importer: Importer | undefined;
    if (config.IMPORT_DIR) {
      importer = new Importer({
        dir: config.IMPORT_DIR, apiUrl: config.API_URL ?? url, apiUser: config.API_USER!, apiPassword: config.API_PASSWORD!,
        tz: config.MARKET_TZ, clock, log: log.child({ part: 'importer' }), deadline: config.IMPORT_DEADLINE,
        settleMs: config.IMPORT_SETTLE_MS, rescanMs: config.IMPORT_RESCAN_MS, batchSize: config.IMPORT_BATCH_SIZE, parallel: config.IMPORT_PARALLEL,
      });
      const running = importer;
      deps.readiness.push({ name: 'importer', check: () => running.problem() });
      await importer.start();
      closers.unshift(() => running.stop());
    }
    return {
      url, port, deps, httpServer, hub, importer, gateway,
      async close() {
        for (const close of closers) await close().catch((error: Error) => log.warn('error while closing', { error }));
      },
    };
  } catch (error) {
    for (const close of closers) await close().catch(() => {});
    throw error;
  }
}

/** The server process: config from the environment, stops cleanly on SIGINT and SIGTERM. */
export async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`powerdesk: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger(config.LOG_LEVEL);
  let server: RunningServer;
  try {
    server = await start(config, { log });
  } catch (error) {
    log.error(`cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    await server.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) void main();
