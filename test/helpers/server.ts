// A real server for tests: the real HTTP app on a real port, on an in-memory embedded
// TimescaleDB. Start one per test file (beforeAll) and isolate tests by their data.
import { loadConfig, type Config } from '../../server/config';
import type { Clock } from '../../server/clock';
import type { Db } from '../../server/db';
import { createLogger, type Logger } from '../../server/log';
import { start, type RunningServer } from '../../server/main';

export const admin = { username: 'admin', password: 'admin-password' };

export function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

export const adminAuth = basic(admin.username, admin.password);

export interface TestServer extends RunningServer {
  /** fetch against the server; JSON bodies are encoded, admin credentials by default. */
  request(path: string, init?: RequestInit & { json?: unknown; auth?: string | null }): Promise<Response>;
}

export async function startTestServer(options: { env?: Record<string, string>; clock?: Clock; db?: Db; dataDir?: string; log?: Logger } = {}): Promise<TestServer> {
  const config: Config = loadConfig({
    PORT: '0', HOST: '127.0.0.1', ADMIN_USER: admin.username, ADMIN_PASSWORD: admin.password, LOG_LEVEL: 'silent',
    ...(options.dataDir ? { DATA_DIR: options.dataDir } : {}),
    ...options.env,
  });
  const server = await start(config, { clock: options.clock, db: options.db, inMemory: !options.dataDir, log: options.log ?? createLogger(config.LOG_LEVEL) });
  return {
    ...server,
    request(path, init = {}) {
      const headers = new Headers(init.headers);
      if (init.auth !== null) headers.set('authorization', init.auth ?? adminAuth);
      let body = init.body;
      if (init.json !== undefined) {
        headers.set('content-type', 'application/json');
        body = JSON.stringify(init.json);
      }
      return fetch(`${server.url}${path}`, { ...init, headers, body });
    },
  };
}

export interface LogEntry { level: string; msg: string; fields?: Record<string, unknown> }

/** A logger that keeps what it is told, for assertions on what a server logged. */
export function recordingLogger(entries: LogEntry[] = []): Logger & { entries: LogEntry[] } {
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => { entries.push({ level, msg, fields }); };
  const log = { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

/** A valid trade of the public API, with overrides. */
export function trade(overrides: Record<string, unknown> = {}) {
  return {
    id: '123', price: 2050, quantity: 12.3, direction: 'buy', delivery_day: '2023-02-06', delivery_hour: 8,
    trader_id: 'trader_1', execution_time: '2023-02-06T06:13:45Z', ...overrides,
  };
}

/** A response's JSON body, typed loosely for assertions. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function jsonOf(res: Response): Promise<any> {
  return res.json();
}
