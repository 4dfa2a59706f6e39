// The operator's command-line tools as child processes with their exit codes: the importer's
// readiness with wrong and right credentials and both forms of API_URL, and the users tool
// saying which database it opened.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../server/auth/users';
import { startTestServer, type TestServer } from './helpers/server';
import { until } from './helpers/wait';

const root = fileURLToPath(new URL('..', import.meta.url));
let server: TestServer;
const children: ChildProcess[] = [];

beforeAll(async () => {
  server = await startTestServer();
  await addUser(server.deps.db, { username: 'nightly', password: 'nightly-password', role: 'service' });
});
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await server?.close();
});

interface Tool { child: ChildProcess; output: () => string; exited: Promise<number | null> }

function tool(script: string, args: string[], env: Record<string, string>, input?: string): Tool {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: root, env: { ...process.env, LOG_LEVEL: 'info', HOST: '127.0.0.1', DATABASE_URL: '', ...env }, stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
  child.stdin!.end(input ?? '');
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** Starts scripts/importer.ts and resolves with the URL of its /readyz once it listens. */
async function importer(env: Record<string, string>): Promise<{ tool: Tool; readyz: string }> {
  const t = tool('scripts/importer.ts', [], { IMPORTER_PORT: '0', IMPORT_SETTLE_MS: '100', IMPORT_RESCAN_MS: '200', ...env });
  const readyz = await until(() => /"url":"(http:\/\/localhost:\d+\/readyz)"/.exec(t.output())?.[1], 'the importer to listen', 60_000);
  return { tool: t, readyz };
}

describe('importer readiness', () => {
  it('is not ready with wrong credentials, naming the user and what to check', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'powerdesk-ready-'));
    const { tool: t, readyz } = await importer({ IMPORT_DIR: dir, API_URL: server.url, API_USER: 'nightly', API_PASSWORD: 'wrong-password' });
    const res = await fetch(readyz);
    expect(res.status).toBe(503);
    const body = await res.json() as { status: string; problems: { importer: string } };
    expect(body.status).toBe('not ready');
    expect(body.problems.importer).toContain(`API ${server.url} refused the credentials of API_USER "nightly" (401 wrong username or password): check API_USER and API_PASSWORD`);
    t.child.kill('SIGTERM');
    expect(await t.exited).toBe(0);
  }, 90_000);

  it('takes API_URL with /v1, imports through it and has no credentials problem', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'powerdesk-ready-'));
    const day = '2023-03-14';
    const header = 'id,price,quantity,direction,delivery_day,delivery_hour,trader_id,execution_time';
    await writeFile(path.join(dir, 'epex_trades_20230314.csv'), `${header}\nops-1,2000,1.5,buy,${day},8,ops_t,${day}T06:00:00Z\nops-2,2100,2.5,sell,${day},9,ops_t,${day}T07:00:00Z\n`);
    const { tool: t, readyz } = await importer({ IMPORT_DIR: dir, API_URL: `${server.url}/v1/`, API_USER: 'nightly', API_PASSWORD: 'nightly-password' });
    const done = await until(async () => {
      const [record] = await (await server.request(`/v1/imports?day=${day}`)).json() as { status: string; stored: number }[];
      return record?.status === 'done' ? record : undefined;
    }, 'the file imported through API_URL with /v1', 60_000);
    expect(done.stored).toBe(2);
    await until(async () => (await readdir(path.join(dir, 'processed')).catch(() => [])).some((n) => n.startsWith('epex_trades_20230314')), 'the file moved to processed/', 30_000);
    const body = await (await fetch(readyz)).json() as { problems?: { importer?: string } };
    expect(body.problems?.importer ?? '').not.toMatch(/credentials|unreachable/);
    t.child.kill('SIGTERM');
    expect(await t.exited).toBe(0);
  }, 90_000);
});

describe('npm run users', () => {
  it('says which embedded database it opened, and when it is a new one', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'powerdesk-users-'));
    const add = tool('scripts/users.ts', ['add', 'ops', '--role', 'service', '--password-stdin'], { DATA_DIR: dataDir }, 'ops-password\n');
    expect(await add.exited).toBe(0);
    expect(add.output()).toContain(`users: created a new embedded database in ${dataDir} (DATA_DIR): no server has used it yet. The demo's is DATA_DIR=./data/demo\n`);
    expect(add.output()).toContain('added ops (service)');
    const list = tool('scripts/users.ts', ['list'], { DATA_DIR: dataDir });
    expect(await list.exited).toBe(0);
    expect(list.output()).toContain(`users: embedded database in ${dataDir} (DATA_DIR)\n`);
    expect(list.output()).toMatch(/^ops\s+service\s+active$/m);
    // The meter tools say it the same way.
    const compress = tool('scripts/compress-meters.ts', ['--days', '7'], { DATA_DIR: dataDir });
    expect(await compress.exited).toBe(0);
    expect(compress.output()).toContain(`compress-meters: embedded database in ${dataDir} (DATA_DIR)\n`);
    const csv = path.join(dataDir, 'readings.csv');
    await writeFile(csv, 'read_timestamp,interval_read,energy_flow_direction,icp_id\n2026-01-05 00:30:00+13,1.5,X,ICP-OPS\n');
    const load = tool('scripts/load-readings.ts', [csv], { DATA_DIR: dataDir });
    expect(await load.exited).toBe(0);
    expect(load.output()).toContain(`load-readings: embedded database in ${dataDir} (DATA_DIR)\n`);
    expect(load.output()).toMatch(/"stored":1\b/);
  }, 120_000);

  it.skipIf(!process.env.TEST_DATABASE_URL)('says which database server it opened, without the password', async () => {
    const url = new URL(process.env.TEST_DATABASE_URL!);
    url.password = 'not-shown';
    const list = tool('scripts/users.ts', ['list'], { DATABASE_URL: url.toString() });
    const code = await list.exited;
    url.password = '***';
    expect(list.output()).toContain(`users: database ${url.toString()} (DATABASE_URL)\n`);
    expect(list.output()).not.toContain('not-shown');
    // A plain PostgreSQL (no TimescaleDB preloaded) is refused after it was named, saying why.
    if (code !== 0) expect(list.output()).toMatch(/users: TimescaleDB is (not|installed but not)/);
  }, 120_000);
});
