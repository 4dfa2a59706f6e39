// Configuration from the environment, parsed once at start; anything wrong is refused with a
// message naming the variable.
import path from 'node:path';
import { z } from 'zod';
import { isValidTimeZone } from './time/market-time';

const optionalString = z.string().trim().min(1).optional().or(z.literal('').transform(() => undefined));

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
  COOKIE_SECURE: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
});

export type Config = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = ConfigSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return { ...parsed.data, DATA_DIR: path.resolve(parsed.data.DATA_DIR) };
}
