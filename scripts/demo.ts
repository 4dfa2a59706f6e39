// `npm run demo`: everything a newcomer needs to watch PnL move in a browser: the dashboard built,
// the exchange and market-data simulators as child processes, the server (embedded database under
// ./data/demo) wired to them, demo users; prints the URL and the credentials. Ctrl-C stops it all.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { balanceOf } from '../server/accounts/ledger';
import { cents } from '../server/accounts/money';
import { addUser, findUser, type Role } from '../server/auth/users';
import { loadConfig } from '../server/config';
import { createLogger } from '../server/log';
import { start, type RunningServer } from '../server/main';
import { ensureWebBuild, root } from './build-web';

const port = Number(process.env.PORT ?? 8080);
const exchangePort = Number(process.env.DEMO_EXCHANGE_PORT ?? 9001);
const marketPort = Number(process.env.DEMO_MARKET_PORT ?? 9002);
const dataDir = path.resolve(process.env.DATA_DIR ?? path.join(root, 'data/demo'));
const rate = process.env.DEMO_RATE ?? '3';

/** EUR each demo trader's account starts with. */
export const demoFunding = '100000.00';

export const demoUsers: { username: string; password: string; role: Role; trader_id: string | null; what: string }[] = [
  { username: 'lead', password: 'lead-demo-pass', role: 'analyst', trader_id: null, what: 'desk lead: sees every trader (Desk view)' },
  { username: 'anna', password: 'anna-demo-pass', role: 'trader', trader_id: 'trader_1', what: 'trader trader_1: her own PnL' },
  { username: 'ben', password: 'ben-demo-pass', role: 'trader', trader_id: 'trader_2', what: 'trader trader_2: his own PnL' },
];
const admin = { username: 'admin', password: 'admin-demo-pass' };

const children: ChildProcess[] = [];
let server: RunningServer | undefined;
let stopping = false;

function say(line: string) {
  process.stdout.write(`demo: ${line}\n`);
}

function child(name: string, script: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  // node itself with tsx's loader, not the tsx launcher: the SIGTERM sent at stop reaches the simulator.
  const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  // The simulators' chatter stays out of the way; their errors do not.
  proc.stderr?.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d.toString()}`));
  proc.on('exit', (code, signal) => {
    if (!stopping) {
      say(`${name} exited unexpectedly (${signal ?? `exit ${code}`}); stopping`);
      void stop(1);
    }
  });
  children.push(proc);
  return proc;
}

/** Resolves when something accepts connections on the port; fails after the deadline. */
async function waitForPort(p: number, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ port: p, host: '127.0.0.1' }, () => { socket.destroy(); resolve(true); });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`${what} did not start listening on port ${p} within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function portFree(p: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer().once('error', () => resolve(false)).once('listening', () => probe.close(() => resolve(true)));
    probe.listen(p, '0.0.0.0');
  });
}

async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  say('stopping…');
  await server?.close().catch(() => {});
  for (const proc of children) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
  await Promise.all(children.map((proc) => (proc.exitCode !== null || proc.signalCode !== null ? undefined : new Promise((r) => proc.once('exit', r)))));
  process.exit(code);
}

async function main() {
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  for (const [p, what, variable] of [[port, 'the server', 'PORT'], [exchangePort, 'the exchange simulator', 'DEMO_EXCHANGE_PORT'], [marketPort, 'the market-data simulator', 'DEMO_MARKET_PORT']] as const) {
    if (!(await portFree(p))) throw new Error(`port ${p} (for ${what}) is in use; set ${variable} to another port`);
  }

  say((await ensureWebBuild({ log: say, quiet: true })) ? 'dashboard built' : 'dashboard up to date');

  const haveExchangeSim = existsSync(path.join(root, 'scripts/exchange-sim.ts'));
  const haveMarketSim = existsSync(path.join(root, 'scripts/market-sim.ts'));
  // The simulators start while the server opens its database (the slow part); the gateway and
  // the poller retry until their simulator answers.
  // The journal next to the demo's database: a restarted simulator goes on numbering where the
  // database's resume point is (and can replay what the server missed while it was stopped).
  if (haveExchangeSim) child('exchange-sim', 'scripts/exchange-sim.ts', ['--port', String(exchangePort), '--rate', rate, '--traders', '4', '--recall-rate', '0.01', '--journal', path.join(dataDir, 'exchange-journal.ndjson')]);
  else say('scripts/exchange-sim.ts is missing: no live deals');
  // The market simulator reconnects to the exchange simulator until it answers.
  if (haveMarketSim) child('market-sim', 'scripts/market-sim.ts', ['--port', String(marketPort), '--exchange', `ws://127.0.0.1:${exchangePort}`, '--update-ms', '20000']);
  else say('scripts/market-sim.ts is missing: no reference prices');
  const simulators = Promise.all([
    haveExchangeSim && waitForPort(exchangePort, 'the exchange simulator'),
    haveMarketSim && waitForPort(marketPort, 'the market-data simulator'),
  ]);

  const config = loadConfig({
    ...process.env,
    PORT: String(port),
    DATA_DIR: dataDir,
    ADMIN_USER: admin.username,
    ADMIN_PASSWORD: admin.password,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    ...(haveExchangeSim ? { EXCHANGE_WS_URL: `ws://127.0.0.1:${exchangePort}` } : {}),
    // The simulator has values only once deals arrived: ask again every 30 s, not every 10 min
    // (24 hours per 30 s stays under the provider's 50 requests a minute).
    ...(haveMarketSim ? { MARKET_DATA_URL: `http://127.0.0.1:${marketPort}/v1`, MARKET_DATA_REFRESH_MS: process.env.MARKET_DATA_REFRESH_MS ?? '30000' } : {}),
  });
  server = await start(config, { log: createLogger(config.LOG_LEVEL) });
  await simulators;
  for (const user of demoUsers) {
    if (!(await findUser(server.deps.db, user.username))) await addUser(server.deps.db, user);
    // Traders start with cash to place orders with (once: a restarted demo keeps its ledger).
    if (user.trader_id && (await balanceOf(server.deps.db, user.trader_id)).updated_at.getTime() === 0) {
      await server.deps.trading!.cash(user.trader_id, cents(demoFunding), 'demo funding');
    }
  }

  const url = `http://localhost:${server.port}`;
  const relative = path.relative(root, dataDir);
  const shownDataDir = relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? `./${relative}` : dataDir;
  const lines = [
    '',
    `  powerdesk demo is running: open ${url}`,
    '',
    '  sign in as    password           sees',
    ...[...demoUsers, { ...admin, what: 'admin: everything' }].map((u) => `  ${u.username.padEnd(14)}${u.password.padEnd(19)}${u.what}`),
    '',
    `  traders start with ${demoFunding} EUR each to place orders with (Balance, GET /v1/balance)`,
    `  database: ${path.relative(root, dataDir) || dataDir} (embedded)   exchange: ws://localhost:${exchangePort} (${rate} deals/s)   market data: http://localhost:${marketPort}/v1 (values every 20 s)`,
    `  add a user to the demo: stop it (Ctrl-C), then DATA_DIR=${shownDataDir} npm run users -- add NAME --role trader --trader-id ID`,
    '  Ctrl-C stops everything.',
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch(async (error: Error) => {
  say(`cannot start: ${error.message}`);
  await stop(1);
});
