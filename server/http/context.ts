// What every route handler can rely on: the dependencies and, under /v1, the signed-in user.
import type { Authenticator } from '../auth/authenticator';
import type { User } from '../auth/users';
import type { Clock } from '../clock';
import type { Db } from '../db';
import type { Logger } from '../log';
import type { Trading } from '../orders/trading';
import type { ReportCache } from '../reports/cache';
import type { PnlFreshness } from '../reports/freshness';
import type { MetricsRegistry } from './metrics';
import type { OpenApiRegistry } from './openapi';

export interface AppDeps {
  db: Db;
  tz: string;
  clock: Clock;
  log: Logger;
  metrics: MetricsRegistry;
  auth: Authenticator;
  openapi: OpenApiRegistry;
  cookieSecure: boolean;
  /** Extra readiness checks of parts running in this process (feed, importer, ...). */
  readiness: ReadinessCheck[];
  /** Reports wait for refreshes this process has queued (late deals for materialised hours). */
  pnlFreshness?: PnlFreshness;
  /** One computation per trader-day for every reader (REST and subscriptions), exact per commit. */
  reports?: ReportCache;
  /** Time zone of meter data's local dates and times (METER_TZ); default Pacific/Auckland. */
  meterTz?: string;
  /** Orders, holds and accounts (server/orders). */
  trading?: Trading;
}

export interface ReadinessCheck {
  name: string;
  /** undefined when ready, otherwise why not. */
  check(): Promise<string | undefined>;
}

export type AppEnv = { Variables: { user: User } };
