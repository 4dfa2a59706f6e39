// A supervisor (systemd, a container runtime) stops a service by sending SIGTERM to the process it
// started: `npm start`, `npm run gateway`, `npm run importer`, `npm run demo`. The node process
// doing the work must get that signal and stop cleanly, leaving nothing behind.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExchangeSim, type ExchangeSim } from '../scripts/exchange-sim';
import { root } from '../scripts/build-web';
import { until } from './helpers/wait';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Every process below `pid`, from the process table. */
function descendants(pid: number): number[] {
  const table = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' }).trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
  const found: number[] = [];
  const walk = (parent: number) => { for (const [p, pp] of table) if (pp === parent) { found.push(p!); walk(p!); } };
  walk(pid);
  return found;
}

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

let sim: ExchangeSim;
const dirs: string[] = [];
const started: ChildProcess[] = [];
beforeAll(async () => { sim = await startExchangeSim({ rate: 0 }); });
afterAll(async () => {
  for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
  await sim?.close();
  for (const dir of dirs) await fs.rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pd-signals-'));
  dirs.push(dir);
  return dir;
}

interface Case { script: string; env: () => Promise<Record<string, string>>; ready: (output: string) => boolean | Promise<boolean>; stopped: RegExp }

const cases: Case[] = [
  {
    script: 'start',
    env: async () => ({ PORT: String(await freePort()), HOST: '127.0.0.1', DATA_DIR: await tempDir(), ADMIN_USER: 'admin', ADMIN_PASSWORD: 'admin-password' }),
    ready: (output) => output.includes('"msg":"listening"'),
    stopped: /"msg":"stopping".*"signal":"SIGTERM"/,
  },
  {
    script: 'gateway',
    env: async () => ({ EXCHANGE_WS_URL: sim.url, DATA_DIR: await tempDir() }),
    ready: (output) => output.includes('"msg":"gateway running"'),
    stopped: /"msg":"stopping".*"signal":"SIGTERM"/,
  },
  {
    script: 'importer',
    env: async () => ({ IMPORT_DIR: await tempDir(), IMPORTER_PORT: String(await freePort()), HOST: '127.0.0.1', API_URL: 'http://127.0.0.1:9', API_USER: 'importer', API_PASSWORD: 'importer-password' }),
    ready: (output) => output.includes('"msg":"importer health endpoints"'),
    stopped: /"msg":"stopping".*"signal":"SIGTERM"/,
  },
  {
    script: 'demo',
    env: async () => ({ PORT: String(await freePort()), DEMO_EXCHANGE_PORT: String(await freePort()), DEMO_MARKET_PORT: String(await freePort()), DATA_DIR: await tempDir() }),
    ready: (output) => output.includes('powerdesk demo is running'),
    stopped: /demo: stopping/,
  },
];

describe('stopping a service started through npm', () => {
  it.each(cases)('stops npm run $script and everything it started when the supervisor sends SIGTERM to npm', async ({ script, env, ready, stopped }) => {
    let output = '';
    const npm = spawn('npm', ['run', '--silent', script], { cwd: root, env: { ...process.env, LOG_LEVEL: 'info', ...(await env()) }, stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(npm);
    npm.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
    npm.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
    const exited = new Promise<void>((resolve) => npm.once('exit', () => resolve()));
    await until(() => ready(output), `npm run ${script} ready`, 150_000).catch((error: Error) => { throw new Error(`${error.message}\n${output}`); });
    const below = descendants(npm.pid!);
    expect(below.length).toBeGreaterThan(0);
    npm.kill('SIGTERM');
    await exited;
    await until(() => below.every((pid) => !alive(pid)), `every process below npm run ${script} gone (left: ${below.filter(alive).join(', ')})`, 20_000);
    expect(output).toMatch(stopped);
  }, 200_000);
});
