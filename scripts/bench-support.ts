// Helpers for the npm run bench:* scripts: a real server in a child process on a fresh embedded
// database, percentiles, and a figure printer.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface BenchServer {
  url: string;
  auth: string;
  child: ChildProcess;
  dataDir: string;
  stop(): Promise<void>;
}

export async function startBenchServer(env: Record<string, string> = {}, port = 18000 + Math.floor(Math.random() * 1000)): Promise<BenchServer> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pd-bench-'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    env: { ...process.env, PORT: String(port), DATA_DIR: dataDir, ADMIN_USER: 'bench', ADMIN_PASSWORD: 'bench-password', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error('the server did not become ready within 60 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url, child, dataDir,
    auth: `Basic ${Buffer.from('bench:bench-password').toString('base64')}`,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function report(title: string, figures: Record<string, string | number>): void {
  process.stdout.write(`\n${title}\n`);
  const width = Math.max(...Object.keys(figures).map((k) => k.length));
  for (const [k, v] of Object.entries(figures)) process.stdout.write(`  ${k.padEnd(width)}  ${typeof v === 'number' ? v.toLocaleString('en-US', { maximumFractionDigits: 2 }) : v}\n`);
}
