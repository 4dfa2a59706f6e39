// Finds complete trades files in IMPORT_DIR: fs.watch for promptness, a periodic rescan as the
// safety net (fs.watch drops events on some file systems), and a settle rule so that a file
// still being written or copied is never read early.
import { watch, type FSWatcher } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileNamePattern } from './csv-file';

export interface FileSnapshot {
  size: number;
  mtimeMs: number;
}

interface Candidate extends FileSnapshot {
  /** performance.now() when size/mtime last changed. */
  changedAt: number;
  /** Set after a reading failed for reasons of ours: retried only when the file changes. */
  parkedAt?: FileSnapshot;
}

export interface WatcherOptions {
  dir: string;
  /** Size and mtime unchanged for this long before a file is read. */
  settleMs: number;
  rescanMs: number;
  /** A settled file whose last byte is not a newline is read only after this longer wait. */
  unterminatedMs: number;
  onReady(name: string, snapshot: FileSnapshot): void;
  onError(error: Error): void;
}

const same = (a: FileSnapshot, b: FileSnapshot) => a.size === b.size && a.mtimeMs === b.mtimeMs;

export class DirWatcher {
  private readonly candidates = new Map<string, Candidate>();
  private readonly busy = new Set<string>();
  private fsWatcher?: FSWatcher;
  private rescanTimer?: NodeJS.Timeout;
  private settleTimer?: NodeJS.Timeout;
  private scanning?: Promise<void>;
  private again = false;
  private stopped = false;

  constructor(private readonly options: WatcherOptions) {}

  start(): void {
    try {
      this.fsWatcher = watch(this.options.dir, (_event, name) => {
        if (name && fileNamePattern.test(String(name))) this.kick();
      });
      this.fsWatcher.on('error', (e) => this.options.onError(e));
    } catch (error) {
      this.options.onError(error as Error); // the rescan still finds the files
    }
    this.rescanTimer = setInterval(() => this.kick(), this.options.rescanMs);
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    this.fsWatcher?.close();
    clearInterval(this.rescanTimer);
    clearTimeout(this.settleTimer);
  }

  /** The importer holds a file while it reads it; released, it is watched again (it may have grown). */
  hold(name: string): void { this.busy.add(name); }

  release(name: string, outcome: { parked?: FileSnapshot } = {}): void {
    this.busy.delete(name);
    const c = this.candidates.get(name);
    if (c) {
      c.parkedAt = outcome.parked;
      c.changedAt = performance.now();
    }
    this.kick();
  }

  kick(): void {
    if (this.stopped) return;
    if (this.scanning) { this.again = true; return; }
    this.scanning = this.scan()
      .catch((e: Error) => this.options.onError(e))
      .finally(() => {
        this.scanning = undefined;
        if (this.again) { this.again = false; this.kick(); }
      });
  }

  private async scan(): Promise<void> {
    const names = (await readdir(this.options.dir)).filter((n) => fileNamePattern.test(n));
    const present = new Set(names);
    for (const name of this.candidates.keys()) if (!present.has(name)) this.candidates.delete(name);
    let nextCheck = Infinity;
    const now = performance.now();
    for (const name of names.sort()) {
      if (this.busy.has(name)) continue;
      let s;
      try { s = await stat(path.join(this.options.dir, name)); } catch { continue; }
      if (!s.isFile()) continue;
      const snap = { size: s.size, mtimeMs: s.mtimeMs };
      const known = this.candidates.get(name);
      if (!known || !same(known, snap)) {
        // A file first seen with an old mtime (already there at start) has been quiet that long.
        const quietBefore = known ? 0 : Math.max(0, Math.min(this.options.settleMs, Date.now() - s.mtimeMs));
        this.candidates.set(name, { ...snap, changedAt: now - quietBefore, parkedAt: known?.parkedAt });
        if (quietBefore < this.options.settleMs) {
          nextCheck = Math.min(nextCheck, this.options.settleMs - quietBefore);
          continue;
        }
      }
      const current = this.candidates.get(name)!;
      if (current.parkedAt && same(current.parkedAt, snap)) continue;
      const quiet = now - current.changedAt;
      if (quiet < this.options.settleMs) { nextCheck = Math.min(nextCheck, this.options.settleMs - quiet); continue; }
      if (snap.size === 0) continue;
      if (!(await endsWithNewline(path.join(this.options.dir, name), snap.size)) && quiet < this.options.unterminatedMs) {
        nextCheck = Math.min(nextCheck, this.options.unterminatedMs - quiet);
        continue;
      }
      this.busy.add(name);
      this.options.onReady(name, snap);
    }
    clearTimeout(this.settleTimer);
    if (nextCheck !== Infinity && !this.stopped) this.settleTimer = setTimeout(() => this.kick(), Math.max(10, nextCheck + 5));
  }
}

async function endsWithNewline(file: string, size: number): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(1);
    await handle.read(buffer, 0, 1, size - 1);
    return buffer[0] === 0x0a;
  } finally {
    await handle.close();
  }
}
