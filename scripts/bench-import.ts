// `npm run bench:import [-- --rows 1000000 --compare 200000]`: generated nightly files imported
// end to end: the importer as its own process (`scripts/importer.ts`) uploading through the REST
// API of a server in this process on a fresh database (embedded, or a new one on the TimescaleDB
// server of DATABASE_URL). Prints rows/s and the importer's
// peak memory (VmHWM) per file size, to show it stays flat as the file grows.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { addUser } from '../server/auth/users';
import { loadConfig } from '../server/config';
import { createLogger } from '../server/log';
import { getReconciliations, listImports, type ImportRecord } from '../server/importer/store';
import { start } from '../server/main';
import { benchDatabase } from './bench-support';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const sizes = [arg('compare', 200_000), arg('rows', 1_000_000)].filter((n) => n > 0);
const batch = arg('batch', 5000);
const parallel = arg('parallel', 2);

async function generate(file: string, rows: number, prefix: string, day: string) {
  const out = createWriteStream(file);
  const write = (s: string) => (out.write(s) ? Promise.resolve() : new Promise<void>((r) => out.once('drain', () => r())));
  await write('id,price,quantity,direction,delivery_day,delivery_hour,trader_id,execution_time\n');
  let chunk = '';
  for (let i = 0; i < rows; i += 1) {
    const hour = i % 24;
    chunk += `${prefix}-${i},${1000 + (i % 9000)},${(1 + (i % 50) / 10).toFixed(1)},${i % 2 ? 'sell' : 'buy'},${day},${hour},trader_${i % 20},${day}T${String(hour).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00Z\n`;
    if (chunk.length > 1 << 20) { await write(chunk); chunk = ''; }
  }
  await write(chunk);
  await new Promise<void>((r) => out.end(() => r()));
}

/** User+system CPU seconds of a process so far (Linux), to show where the work goes. */
async function cpuSeconds(pid: number): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!text) return undefined;
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100/s)
}

async function peakRss(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  const m = status && /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : undefined;
}

const root = await mkdtemp(path.join(os.tmpdir(), 'powerdesk-bench-import-'));
const database = await benchDatabase('import');
const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', ...database.env, ADMIN_USER: 'admin', ADMIN_PASSWORD: 'admin-password', LOG_LEVEL: 'warn' });
const server = await start(config, { log: createLogger('warn') });
await addUser(server.deps.db, { username: 'bench-importer', password: 'bench-importer-pw', role: 'service' });
const mb = (n: number) => `${Math.round(n / 1024 / 1024)} MB`;
console.log(`server at ${server.url} on ${database.label}; batches of ${batch}, ${parallel} in parallel; ${os.cpus().length} cores`);

const children: import('node:child_process').ChildProcess[] = [];
try {
  for (const [k, rows] of sizes.entries()) {
    const dir = path.join(root, `import-${k}`);
    const day = `2023-04-${String(10 + k).padStart(2, '0')}`;
    const name = `epex_trades_${day.replaceAll('-', '')}.csv`;
    const staging = path.join(root, name);
    await generate(staging, rows, `b${k}`, day);
    const size = (await stat(staging)).size;
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/importer.ts'], {
      env: {
        ...process.env, IMPORT_DIR: dir, API_URL: server.url, API_USER: 'bench-importer', API_PASSWORD: 'bench-importer-pw',
        IMPORT_SETTLE_MS: '200', IMPORT_RESCAN_MS: '200', IMPORT_BATCH_SIZE: String(batch), IMPORT_PARALLEL: String(parallel), IMPORTER_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    children.push(child);
    // The importer creates the directory; the file is moved in complete (rename).
    for (;;) { if (await stat(dir).catch(() => undefined)) break; await new Promise((r) => setTimeout(r, 50)); }
    const { rename } = await import('node:fs/promises');
    const t0 = performance.now();
    const serverCpu0 = process.cpuUsage();
    const importerCpu0 = (await cpuSeconds(child.pid!)) ?? 0;
    await rename(staging, path.join(dir, name));
    let record: ImportRecord | undefined;
    let sampledPeak = 0;
    // This process is the server: ask its database directly rather than through its busy port.
    for (;;) {
      [record] = await listImports(server.deps.db, { trading_day: day, limit: 1 });
      sampledPeak = Math.max(sampledPeak, (await peakRss(child.pid!)) ?? 0);
      if (record?.status === 'done' && (await getReconciliations(server.deps.db, { import_id: record.id, limit: 0 })).length) break;
      if (record && record.status !== 'running' && record.status !== 'done') throw new Error(`import ${record.status}: ${record.message}`);
      if (child.exitCode !== null) throw new Error(`the importer exited with ${child.exitCode}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const wall = (performance.now() - t0) / 1000;
    const importSeconds = (record!.finished_at!.getTime() - record!.started_at.getTime()) / 1000;
    const peak = (await peakRss(child.pid!)) ?? sampledPeak;
    const serverCpu = process.cpuUsage(serverCpu0);
    const serverSeconds = (serverCpu.user + serverCpu.system) / 1e6;
    const importerSeconds = ((await cpuSeconds(child.pid!)) ?? NaN) - importerCpu0;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    console.log(
      `${rows.toLocaleString('en')} rows (${mb(size)}): parse+upload ${importSeconds.toFixed(1)} s = ${Math.round(rows / importSeconds).toLocaleString('en')} rows/s; ` +
      `end to end with settle, hashing and reconciliation ${wall.toFixed(1)} s = ${Math.round(rows / wall).toLocaleString('en')} rows/s; ` +
      `stored ${record!.stored.toLocaleString('en')}; importer peak RSS ${mb(peak)}`,
    );
    // On a shared machine wall time depends on the neighbours; CPU time does not.
    console.log(
      `  CPU: server (HTTP + validation + embedded database) ${serverSeconds.toFixed(1)} s = ${Math.round(rows / serverSeconds).toLocaleString('en')} rows per CPU-second; ` +
      `importer (parse + validation + upload) ${importerSeconds.toFixed(1)} s = ${Math.round(rows / importerSeconds).toLocaleString('en')} rows per CPU-second; ` +
      `load average during the run ${os.loadavg()[0]!.toFixed(1)}`,
    );
  }
} finally {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await server.close();
  await rm(root, { recursive: true, force: true });
  await database.drop();
}
