// The real server (`node --import tsx server/main.ts`) or gateway as its own process, for tests that kill it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Db } from '../../server/db';
import { serveDb } from './db-host';
import { adminAuth } from './server';

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
  /** Its log lines so far (JSON). */
  log: string[];
  request(path: string): Promise<Response>;
  /** kill -9. */
  kill(): Promise<void>;
  /** SIGTERM, and waits for it to exit. */
  stop(): Promise<void>;
}

/** Starts the server and resolves once it listens; rejects with its last log lines if it exits first. */
export function startServerProcess(env: Record<string, string>, timeoutMs = 180_000): Promise<ServerProcess> {
  return startProcess('server/main.ts', env, (entry) => (entry.msg === 'listening' && typeof entry.url === 'string' ? entry.url.replace('localhost', '127.0.0.1') : undefined), timeoutMs);
}

/** Starts `scripts/gateway.ts` and resolves once it runs. */
export function startGatewayProcess(env: Record<string, string>, timeoutMs = 180_000): Promise<ServerProcess> {
  return startProcess('scripts/gateway.ts', env, (entry) => (entry.msg === 'gateway running' ? 'gateway' : undefined), timeoutMs);
}

/** The server as its own process on `db`, which this process holds (test/helpers/db-host.ts). */
export function startServerProcessOn(db: Db, env: Record<string, string>, timeoutMs = 60_000): Promise<ServerProcess> {
  return startProcess('test/helpers/db-child.ts', env, (entry) => (entry.msg === 'listening' && typeof entry.url === 'string' ? entry.url.replace('localhost', '127.0.0.1') : undefined), timeoutMs, [], db);
}

/** Starts `scripts/exchange-sim.ts` with `args`; resolves once it listens (url: its websocket URL, or "amqp"). */
export function startExchangeSimProcess(args: string[], timeoutMs = 180_000): Promise<ServerProcess> {
  return startProcess('scripts/exchange-sim.ts', {}, (entry) => (entry.msg === 'exchange simulator listening' ? String(entry.url ?? entry.transport).replace('localhost', '127.0.0.1') : undefined), timeoutMs, args);
}

async function startProcess(script: string, env: Record<string, string>, ready: (entry: Record<string, unknown>) => string | undefined, timeoutMs: number, args: string[] = [], db?: Db): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: process.cwd(),
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ADMIN_USER: 'admin', ADMIN_PASSWORD: 'admin-password', ...env },
    stdio: db ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    serialization: db ? 'advanced' : 'json',
  });
  if (db) serveDb(db, child);
  const log: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} was not ready within ${timeoutMs} ms:\n${log.slice(-20).join('\n')}`)), timeoutMs);
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        log.push(line);
        if (log.length > 2000) log.splice(0, 1000);
        try {
          const found = ready(JSON.parse(line) as Record<string, unknown>);
          if (found) { clearTimeout(timer); resolve(found); }
        } catch { /* not a log line */ }
      });
    }
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`${script} exited with ${code} before it was ready:\n${log.slice(-20).join('\n')}`)); });
  });
  return {
    child, url, exited, log,
    request: (path) => fetch(`${url}${path}`, { headers: { authorization: adminAuth } }),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
