// The embedded database's data-dir lock: one process at a time, and a stale lock never keeps
// the server from starting, even when the system gave the dead owner's PID to another process.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openEmbedded, processIdentity } from '../server/db/embedded';
import { sql } from '../server/db';
import { until } from './helpers/wait';

const children: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** Another live process (not a powerdesk one). */
async function otherProcess(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 60000); console.log("up")'], { stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(child);
  await new Promise((resolve) => child.stdout!.once('data', resolve));
  return child.pid!;
}

function dataDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pd-lock-'));
  dirs.push(dir);
  return dir;
}

const linux = processIdentity(process.pid) !== undefined;

describe('embedded data-dir lock', () => {
  it.runIf(linux)('opens the database when the stale lock\'s PID now belongs to another live process', async () => {
    const dir = dataDir();
    const pid = await otherProcess();
    const now = processIdentity(pid)!;
    // Written by a process that ran with this PID earlier (another start time), then died.
    fs.writeFileSync(path.join(dir, 'powerdesk.lock'), JSON.stringify({ pid, started: String(Number(now.started) - 1000), boot: now.boot }));
    const db = await openEmbedded(dir);
    try {
      expect(await db.query(sql`SELECT 1 AS ok`)).toEqual([{ ok: 1 }]);
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'powerdesk.lock'), 'utf8'))).toMatchObject({ pid: process.pid });
    } finally {
      await db.close();
    }
  });

  it.runIf(linux)('refuses to open when the process that wrote the lock is still running', async () => {
    const dir = dataDir();
    const pid = await otherProcess();
    fs.writeFileSync(path.join(dir, 'powerdesk.lock'), JSON.stringify({ pid, ...processIdentity(pid) }));
    await expect(openEmbedded(dir)).rejects.toThrow(`is in use by process ${pid}`);
  });

  it('opens the database when the lock names a process that is gone', async () => {
    const dir = dataDir();
    const pid = await otherProcess();
    const identity = processIdentity(pid);
    children.pop()!.kill('SIGKILL');
    await until(() => { try { process.kill(pid, 0); return false; } catch { return true; } }, 'the process gone');
    fs.writeFileSync(path.join(dir, 'powerdesk.lock'), JSON.stringify({ pid, ...identity }));
    const db = await openEmbedded(dir);
    await db.close();
    expect(fs.existsSync(path.join(dir, 'powerdesk.lock'))).toBe(false);
  });
});
