// Configuration from the environment, parsed once at start; anything wrong is refused with a
// message naming the variable.
import path from 'node:path';
import { z } from 'zod';
import { isValidTimeZone } from './time/market-time';

const optionalString = z.string().trim().min(1).optional().or(z.literal('').transform(() => undefined));

function millis(min: number, max: number, fallback: number) {
  const error = `must be a number of milliseconds from ${min} to ${max}`;
  return z.coerce.number({ error }).int({ error }).min(min, { error }).max(max, { error }).default(fallback);
}

export const ConfigSchema = z.object({
  PORT: z.coerce.number({ error: 'must be a port number' }).int().min(0).max(65535).default(8080),
  HOST: z.string().default('0.0.0.0'),
  DATABASE_URL: optionalString.refine((u) => u === undefined || /^postgres(ql)?:\/\//.test(u), { error: 'must be a postgres:// or postgresql:// URL' }),
  DATA_DIR: z.string().default('./data'),
  MARKET_TZ: z.string().default('Europe/Berlin').refine(isValidTimeZone, { error: (i) => `${JSON.stringify(i.input)} is not an IANA time zone such as Europe/Berlin` }),
  ADMIN_USER: optionalString,
  ADMIN_PASSWORD: optionalString,
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  METER_TZ: z.string().default('Pacific/Auckland').refine(isValidTimeZone, { error: (i) => `${JSON.stringify(i.input)} is not an IANA time zone such as Pacific/Auckland` }),
  METER_CHUNK_DAYS: optionalString.transform((v) => (v === undefined ? undefined : Number(v))).pipe(z.number({ error: 'must be a number of days' }).int().min(1).max(366).optional()),
  METER_COMPRESS_AFTER_DAYS: z.coerce.number({ error: 'must be a number of days' }).int().min(0).default(30),
  METER_COMPRESS_EVERY_MINUTES: optionalString.transform((v) => (v === undefined ? undefined : Number(v))).pipe(z.number({ error: 'must be a number of minutes' }).int().min(1).optional()),
  // GET /metrics: this bearer token (Prometheus's authorization), or an admin or service user.
  METRICS_TOKEN: optionalString.refine((t) => t === undefined || t.length >= 16, { error: 'must be at least 16 characters (a random token, e.g. openssl rand -hex 32)' }),
  COOKIE_SECURE: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
  // Exchange gateway (server/feed) and reference-price poller (server/market-data).
  EXCHANGE_WS_URL: optionalString.refine((u) => u === undefined || /^wss?:\/\/[^\s]+$/.test(u), { error: 'must be a ws:// or wss:// URL' }),
  EXCHANGE_AMQP_URL: optionalString.refine((u) => u === undefined || /^amqps?:\/\/[^\s]+$/.test(u), { error: 'must be an amqp:// or amqps:// URL such as amqp://guest:guest@localhost:5672' }),
  EXCHANGE_AMQP_PREFIX: z.string().trim().regex(/^[A-Za-z0-9._-]{1,200}$/, { error: 'must be 1-200 characters of letters, digits, ".", "_" or "-"' }).default('powerdesk.exchange'),
  EXCHANGE_AMQP_PREFETCH: z.coerce.number({ error: 'must be an integer from 1 to 65535' }).int({ error: 'must be an integer from 1 to 65535' }).min(1).max(65_535).default(2000),
  EXCHANGE_MEMBER: z.string().trim().regex(/^[\x21-\x7E]{1,128}$/, { error: 'must be 1-128 printable characters without spaces' }).default('default'),
  EXCHANGE_RESUME_TIMEOUT_MS: millis(50, 600_000, 5000),
  FEED_GATEWAY_ID: optionalString,
  FEED_HEARTBEAT_MS: millis(100, 600_000, 10_000),
  FEED_BACKOFF_MIN_MS: millis(10, 600_000, 500),
  FEED_BACKOFF_MAX_MS: millis(10, 3_600_000, 30_000),
  FEED_BATCH_MAX: z.coerce.number({ error: 'must be an integer from 1 to 10000' }).int({ error: 'must be an integer from 1 to 10000' }).min(1).max(10_000).default(1000),
  FEED_BATCH_MS: millis(0, 10_000, 20),
  FEED_GATE_CLOSURE_MINUTES: z.coerce.number({ error: 'must be a number of minutes from 0 to 1440' }).int({ error: 'must be a number of minutes from 0 to 1440' }).min(0, { error: 'must be a number of minutes from 0 to 1440' }).max(1440, { error: 'must be a number of minutes from 0 to 1440' }).default(5),
  // Orders and accounts (server/orders, server/accounts).
  ORDER_GATE_CLOSURE_MINUTES: z.coerce.number({ error: 'must be a number of minutes from 0 to 1440' }).int({ error: 'must be a number of minutes from 0 to 1440' }).min(0, { error: 'must be a number of minutes from 0 to 1440' }).max(1440, { error: 'must be a number of minutes from 0 to 1440' }).default(5),
  ORDER_MARKET_HOLD_PRICE: z.string().trim().default('9999').refine((v) => /^\d{1,4}(\.\d{1,2})?$/.test(v) && Number(v) > 0 && Number(v) <= 9999, { error: 'must be a price in EUR/MWh above 0 and at most 9999, such as 9999 or 3000.00' }),
  ORDER_SHORT_LIMIT_MW: z.string().trim().default('0').refine((v) => /^\d{1,6}(\.\d)?$/.test(v), { error: 'must be a number of MW, 0 or more, a multiple of 0.1' }),
  ORDER_EXPIRY_SWEEP_MS: millis(50, 600_000, 5000),
  ORDER_DISPATCH_LEASE_MS: millis(100, 600_000, 10_000),
  MARKET_DATA_URL: optionalString.refine((u) => u === undefined || /^https?:\/\/[^\s]+$/.test(u), { error: 'must be an http:// or https:// URL' }),
  MARKET_DATA_PER_MINUTE: z.coerce.number({ error: 'must be a positive integer' }).int().min(1).max(100_000).default(50),
  MARKET_DATA_PER_HOUR: z.coerce.number({ error: 'must be a positive integer' }).int().min(1).max(1_000_000).default(1000),
  MARKET_DATA_REFRESH_MS: millis(1000, 86_400_000, 600_000),
  MARKET_DATA_TIMEOUT_MS: millis(100, 120_000, 5000),
  // Nightly file importer (server/importer): runs in the server process when IMPORT_DIR is set,
  // or alone with `npm run importer`.
  IMPORT_DIR: optionalString,
  IMPORT_DEADLINE: z.string().default('02:00').refine((v) => /^([01]\d|2[0-3]):[0-5]\d$/.test(v), { error: (i) => `must be a local time HH:MM such as 02:00 (got ${JSON.stringify(i.input)})` }),
  IMPORT_SETTLE_MS: z.coerce.number({ error: 'must be milliseconds' }).int().min(0).max(3_600_000).default(5000),
  IMPORT_RESCAN_MS: z.coerce.number({ error: 'must be milliseconds' }).int().min(50).max(3_600_000).default(10_000),
  IMPORT_BATCH_SIZE: z.coerce.number({ error: 'must be a number of rows' }).int().min(1).max(10_000).default(5000),
  IMPORT_PARALLEL: z.coerce.number({ error: 'must be a number of requests' }).int().min(1).max(16).default(2),
  API_URL: optionalString.refine((u) => u === undefined || /^https?:\/\/[^/]+/.test(u), { error: 'must be an http:// or https:// URL such as http://localhost:8080' }),
  API_USER: optionalString,
  API_PASSWORD: optionalString,
  IMPORTER_PORT: z.coerce.number({ error: 'must be a port number' }).int().min(0).max(65535).default(8090),
}).superRefine((c, ctx) => {
  if (c.EXCHANGE_WS_URL && c.EXCHANGE_AMQP_URL) {
    ctx.addIssue({ code: 'custom', path: ['EXCHANGE_AMQP_URL'], message: 'EXCHANGE_WS_URL is set too: the exchange session runs over one transport, set only one of them' });
  }
  if (c.IMPORT_DIR && (!c.API_USER || !c.API_PASSWORD)) {
    ctx.addIssue({ code: 'custom', path: ['API_USER'], message: 'IMPORT_DIR is set: the importer uploads through the REST API and needs API_USER and API_PASSWORD (a service user: npm run users -- add importer --role service)' });
  }
});

export type Config = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = ConfigSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  if (parsed.data.FEED_BACKOFF_MIN_MS > parsed.data.FEED_BACKOFF_MAX_MS) throw new ConfigError('invalid configuration:\n  FEED_BACKOFF_MAX_MS: must not be smaller than FEED_BACKOFF_MIN_MS');
  return { ...parsed.data, DATA_DIR: path.resolve(parsed.data.DATA_DIR), IMPORT_DIR: parsed.data.IMPORT_DIR && path.resolve(parsed.data.IMPORT_DIR) };
}
