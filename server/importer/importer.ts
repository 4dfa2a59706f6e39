// The nightly file importer: watches IMPORT_DIR, reads each complete file once, uploads its
// trades through the REST API in batches, records the import, asks the server to reconcile it
// with the live feed, and moves the file to processed/ (rejected rows to rejected/).
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../clock';
import type { Logger } from '../log';
import { ApiClient, ApiRequestError, StoppedError } from './api-client';
import { FileRefused, readTradesFile, tradingDayOf, type ApiTradeInput, type ReadProgress } from './csv-file';
import { expectedTradingDay, fileNameFor, missingFileMessage } from './deadline';
import type { ImportRecord, Reconciliation } from './store';
import { DirWatcher, type FileSnapshot } from './watcher';

export interface ImporterOptions {
  dir: string;
  apiUrl: string;
  apiUser: string;
  apiPassword: string;
  tz: string;
  clock: Clock;
  log: Logger;
  deadline?: string;
  settleMs?: number;
  rescanMs?: number;
  batchSize?: number;
  parallel?: number;
  /** Human-readable lines (progress bar, reconciliation); standalone importer on a terminal. */
  print?: (text: string) => void;
  /** A progress line rewritten in place (TTY); otherwise periodic log lines. */
  tty?: boolean;
  retryInitialMs?: number;
  retryMaxMs?: number;
}

export type ImportOutcome =
  | { outcome: 'imported'; import: ImportRecord; reconciliation: Reconciliation; rejectsFile?: string }
  | { outcome: 'identical'; import: ImportRecord; same_as: ImportRecord }
  | { outcome: 'refused'; import: ImportRecord; message: string }
  | { outcome: 'changed'; message: string };

interface BeginResponse {
  outcome: 'started' | 'resumed' | 'identical';
  import: ImportRecord;
  same_as?: ImportRecord;
  done_batches?: [number, number][];
}

interface BatchResponse {
  received: number; stored: number; duplicates: number; conflicts: number; invalid: number;
  results: { index: number; status: string; message?: string; id?: string }[];
}

export class Importer {
  readonly api: ApiClient;
  private readonly watcher: DirWatcher;
  private readonly abort = new AbortController();
  private readonly queue: { name: string; snapshot: FileSnapshot }[] = [];
  private running?: Promise<void>;
  private deadlineTimer?: NodeJS.Timeout;
  private alertedFor?: string;
  private lastWatchError?: string;
  private readonly listeners = new Set<(name: string, result: ImportOutcome | Error) => void>();
  readonly deadline: string;

  constructor(private readonly options: ImporterOptions) {
    this.deadline = options.deadline ?? '02:00';
    this.api = new ApiClient({
      url: options.apiUrl, user: options.apiUser, password: options.apiPassword, log: options.log,
      signal: this.abort.signal, initialDelayMs: options.retryInitialMs, maxDelayMs: options.retryMaxMs,
    });
    const settleMs = options.settleMs ?? 5000;
    this.watcher = new DirWatcher({
      dir: options.dir, settleMs, rescanMs: options.rescanMs ?? 10_000, unterminatedMs: Math.max(10 * settleMs, 30_000),
      onReady: (name, snapshot) => this.enqueue(name, snapshot),
      onError: (error) => {
        // Said once per distinct problem: the rescan would repeat it every few seconds.
        if (this.lastWatchError === error.message) return;
        this.lastWatchError = error.message;
        options.log.warn('watching the import directory', { dir: options.dir, error: error.message });
      },
    });
  }

  async start(): Promise<void> {
    for (const sub of ['', 'processed', 'rejected']) await mkdir(path.join(this.options.dir, sub), { recursive: true });
    this.options.log.info('importer watching', { dir: this.options.dir, api: this.options.apiUrl, deadline: `${this.deadline} ${this.options.tz}` });
    this.watcher.start();
    this.deadlineTimer = setInterval(() => void this.checkDeadline(), 60_000);
    void this.checkDeadline();
  }

  async stop(): Promise<void> {
    this.watcher.stop();
    clearInterval(this.deadlineTimer);
    this.abort.abort();
    await this.running?.catch(() => {});
  }

  /** Called after every file (tests and the standalone status wait on it). */
  onFile(listener: (name: string, result: ImportOutcome | Error) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Readiness: undefined when fine, otherwise what is wrong (missing file, API unreachable). */
  async problem(): Promise<string | undefined> {
    const problems: string[] = [];
    const missing = await this.missingFile();
    if (missing) problems.push(missing);
    if (!this.api.state.reachable) problems.push(`API ${this.options.apiUrl} unreachable since ${this.api.state.since.toISOString()}: ${this.api.state.lastError}`);
    else {
      const credentials = await this.api.credentialsProblem();
      if (credentials) problems.push(credentials);
    }
    return problems.length ? problems.join('; ') : undefined;
  }

  /** The missing-file alert at the injected clock's time, or undefined. */
  async missingFile(): Promise<string | undefined> {
    const day = expectedTradingDay(this.options.clock.now(), this.options.tz, this.deadline);
    return (await this.arrived(day)) ? undefined : missingFileMessage(day, this.deadline, this.options.tz);
  }

  private async arrived(tradingDay: string): Promise<boolean> {
    const name = fileNameFor(tradingDay);
    const stem = name.replace(/\.csv$/, '');
    for (const sub of ['', 'processed', 'rejected']) {
      const names = await readdir(path.join(this.options.dir, sub)).catch(() => [] as string[]);
      if (names.some((n) => n === name || n.startsWith(`${stem}.`) || n === `${name}.tmp` || n === `${name}.partial`)) return true;
    }
    return false;
  }

  private async checkDeadline(): Promise<void> {
    const missing = await this.missingFile().catch(() => undefined);
    const day = expectedTradingDay(this.options.clock.now(), this.options.tz, this.deadline);
    if (missing && this.alertedFor !== day) {
      this.alertedFor = day;
      this.options.log.error('nightly file missing', { trading_day: day, message: missing });
    }
  }

  private enqueue(name: string, snapshot: FileSnapshot) {
    this.queue.push({ name, snapshot });
    if (!this.running) this.running = this.drain().finally(() => { this.running = undefined; });
  }

  private async drain(): Promise<void> {
    while (this.queue.length && !this.abort.signal.aborted) {
      const { name } = this.queue.shift()!;
      let parked: FileSnapshot | undefined;
      try {
        const result = await this.importFile(name);
        for (const l of this.listeners) l(name, result);
      } catch (error) {
        if (error instanceof StoppedError) { this.watcher.release(name); return; }
        // Not transient (the API refused us): retried when the file changes, not in a loop.
        const s = await stat(path.join(this.options.dir, name)).catch(() => undefined);
        parked = s ? { size: s.size, mtimeMs: s.mtimeMs } : undefined;
        this.options.log.error('import failed', { file: name, error: (error as Error).message });
        for (const l of this.listeners) l(name, error as Error);
      }
      this.watcher.release(name, { parked });
    }
  }

  /** Reads one file end to end. Safe to repeat: the server makes every step idempotent. */
  async importFile(name: string): Promise<ImportOutcome> {
    const { dir, log, tz } = this.options;
    const file = path.join(dir, name);
    const tradingDay = tradingDayOf(name);
    if (!tradingDay) throw new Error(`${name}: not a file name epex_trades_YYYYMMDD.csv`);
    const before = await stat(file);
    const sha256 = await sha256Of(file);
    const begin = await this.api.request<BeginResponse>('POST', '/v1/imports', { file_name: name, sha256, size_bytes: before.size, trading_day: tradingDay });
    const flog = log.child({ file: name, import_id: begin.import.id });
    if (begin.outcome === 'identical') {
      const sameAs = begin.same_as!;
      flog.info('identical file: already imported, nothing to do', { same_as: sameAs.id, same_as_file: sameAs.file_name, sha256 });
      this.options.print?.(`${name}: identical to import ${sameAs.id} (${sameAs.file_name}, finished ${new Date(sameAs.finished_at!).toISOString()}): nothing to do`);
      await this.moveTo('processed', name, begin.import.id);
      return { outcome: 'identical', import: begin.import, same_as: sameAs };
    }
    const done = begin.done_batches ?? [];
    if (begin.outcome === 'resumed') flog.info('resuming an unfinished import', { batches_done: done.length });
    else flog.info('import started', { size_bytes: before.size, sha256, trading_day: tradingDay });

    const rejectsTmp = path.join(dir, 'rejected', `${name}.rejects.csv.tmp`);
    let rejects: WriteStream | undefined;
    let header = '';
    let rejected = 0;
    const writeReject = (line: number, reason: string, raw: string) => {
      if (!rejects) {
        rejects = createWriteStream(rejectsTmp);
        rejects.write(`line,reason,${header}\n`);
      }
      rejected += 1;
      rejects.write(`${line},${csvQuote(reason)},${raw}\n`);
    };

    const batchSize = this.options.batchSize ?? 5000;
    const parallel = this.options.parallel ?? 2;
    const inflight = new Set<Promise<void>>();
    let failure: Error | undefined;
    const serverInvalid: { line: number; reason: string; raw: string }[] = [];
    let uploaded = 0;
    const upload = async (batch: { line: number; raw: string; trade: ApiTradeInput }[]) => {
      const first = batch[0]!.line;
      const last = batch[batch.length - 1]!.line;
      const res = await this.api.request<BatchResponse>('POST', `/v1/trades/batch?source=file&import_id=${begin.import.id}&first_line=${first}&last_line=${last}`, batch.map((b) => b.trade));
      // The same rules run on both sides, so this stays empty unless the server refuses more (e.g. permissions).
      for (const r of res.results) if (r.status === 'invalid') serverInvalid.push({ line: batch[r.index]!.line, reason: `refused by the API: ${r.message}`, raw: batch[r.index]!.raw });
      uploaded += batch.length;
    };
    const dispatch = async (batch: { line: number; raw: string; trade: ApiTradeInput }[]) => {
      while (inflight.size >= parallel) await Promise.race(inflight);
      if (failure) throw failure;
      const p: Promise<void> = upload(batch).catch((e: Error) => { failure ??= e; }).finally(() => inflight.delete(p));
      inflight.add(p);
    };

    const progress: ReadProgress = { bytes: 0 };
    const started = performance.now();
    let rows = 0;
    let skipped = 0;
    let lastReport = started;
    const report = (final = false) => {
      const now = performance.now();
      if (!final && now - lastReport < (this.options.tty ? 250 : 10_000)) return;
      lastReport = now;
      const seconds = (now - started) / 1000;
      const percent = before.size ? Math.min(100, Math.round((progress.bytes / before.size) * 100)) : 100;
      const rate = Math.round(rows / Math.max(seconds, 0.001));
      if (this.options.tty) {
        process.stderr.write(`\r${name}: ${rows.toLocaleString('en')} rows, ${percent}%, ${rate.toLocaleString('en')} rows/s, ${rejected} rejected${final ? '\n' : ''}`);
      } else if (!final) {
        flog.info('import progress', { rows, percent, rows_per_s: rate, rejected, uploaded });
      }
    };

    let batch: { line: number; raw: string; trade: ApiTradeInput }[] = [];
    try {
      for await (const row of readTradesFile(file, tz, progress)) {
        if (!header) header = await headerLine(file);
        rows += 1;
        if (!row.ok) writeReject(row.line, row.reason, row.raw);
        else if (isDone(done, row.line)) skipped += 1;
        else {
          batch.push({ line: row.line, raw: row.raw, trade: row.trade });
          if (batch.length >= batchSize) { await dispatch(batch); batch = []; }
        }
        if ((rows & 1023) === 0) report();
        if (failure) throw failure;
      }
      if (batch.length) await dispatch(batch);
      await Promise.all(inflight);
      if (failure) throw failure;
    } catch (error) {
      await Promise.allSettled(inflight);
      await closeStream(rejects);
      if (!(error instanceof FileRefused)) throw error;
      const message = error.message;
      flog.error('file refused', { message });
      this.options.print?.(`${name}: refused: ${message}`);
      const record = await this.api.request<ImportRecord>('POST', `/v1/imports/${begin.import.id}/finish`, { status: 'failed', rows, rejected, message: message.slice(0, 2000) });
      await rm(rejectsTmp, { force: true });
      await writeFile(path.join(dir, 'rejected', `${name}.error.txt`), `${message}\n`);
      await this.moveTo('rejected', name, begin.import.id);
      return { outcome: 'refused', import: record, message };
    }
    for (const r of serverInvalid) writeReject(r.line, r.reason, r.raw);
    await closeStream(rejects);
    report(true);

    // A file that changed while it was read is read again from the start once it settles.
    const after = await stat(file);
    if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
      const message = `the file changed while it was read (size ${before.size} -> ${after.size} bytes); it will be read again`;
      flog.warn('file changed while read', { message });
      await this.api.request('POST', `/v1/imports/${begin.import.id}/finish`, { status: 'failed', rows, rejected, message });
      await rm(rejectsTmp, { force: true });
      return { outcome: 'changed', message };
    }

    const record = await this.api.request<ImportRecord>('POST', `/v1/imports/${begin.import.id}/finish`, { status: 'done', rows, rejected });
    const reconciliation = await this.api.request<Reconciliation>('POST', '/v1/reconciliations', { import_id: begin.import.id, limit: 20 });
    let rejectsFile: string | undefined;
    if (rejected) {
      rejectsFile = path.join(dir, 'rejected', `${name}.rejects.csv`);
      await rename(rejectsTmp, rejectsFile);
    }
    await this.moveTo('processed', name, begin.import.id);
    const seconds = (performance.now() - started) / 1000;
    flog.info('import finished', {
      rows, stored: record.stored, duplicates: record.duplicates, conflicts: record.conflicts, rejected, skipped_as_done: skipped,
      seconds: Math.round(seconds * 10) / 10, rows_per_s: Math.round(rows / Math.max(seconds, 0.001)), rejects_file: rejectsFile,
    });
    this.printReconciliation(flog, reconciliation);
    this.options.print?.(`${name}: ${rows} rows: ${record.stored} stored, ${record.duplicates} duplicates, ${record.conflicts} conflicts, ${rejected} rejected${rejectsFile ? ` (see ${rejectsFile})` : ''}`);
    return { outcome: 'imported', import: record, reconciliation, rejectsFile };
  }

  private printReconciliation(log: Logger, r: Reconciliation) {
    const summary = { trading_day: r.trading_day, file_trades: r.file_trades, feed_trades: r.feed_trades, matched: r.matched, only_in_file: r.only_in_file, only_in_feed: r.only_in_feed, different: r.different, recalled: r.recalled };
    const clean = r.only_in_file === 0 && r.only_in_feed === 0 && r.different === 0;
    (clean ? log.info : log.warn)('reconciliation with the live feed', { ...summary, only_in_file_ids: r.items.only_in_file, only_in_feed_ids: r.items.only_in_feed, different_items: r.items.different });
    const print = this.options.print;
    if (!print) return;
    print(`reconciliation of ${r.file_name} (trading day ${r.trading_day}) with the live feed: ${r.matched} match, ${r.only_in_file} only in the file (the feed missed them), ${r.only_in_feed} only in the feed, ${r.different} different${r.recalled ? `; ${r.recalled} recalled by the exchange (not expected in the file)` : ''}`);
    if (r.items.only_in_file.length) print(`  only in the file: ${r.items.only_in_file.join(', ')}${r.only_in_file > r.items.only_in_file.length ? ', ...' : ''}`);
    if (r.items.only_in_feed.length) print(`  only in the feed: ${r.items.only_in_feed.join(', ')}${r.only_in_feed > r.items.only_in_feed.length ? ', ...' : ''}`);
    for (const d of r.items.different) print(`  ${d.trade_id}: ${d.fields.map((f) => `${f.field} file ${JSON.stringify(f.file)} vs feed ${JSON.stringify(f.feed)}`).join('; ')}`);
    if (r.truncated) print(`  (lists cut; GET /v1/imports/${r.import_id}/reconciliation?limit=100000 has them all)`);
  }

  /** Moves a file out of the watched directory; an earlier delivery of the same name is kept. */
  private async moveTo(sub: 'processed' | 'rejected', name: string, importId: number) {
    const target = path.join(this.options.dir, sub, name);
    const exists = await stat(target).then(() => true, () => false);
    await rename(path.join(this.options.dir, name), exists ? target.replace(/\.csv$/, `.import-${importId}.csv`) : target);
  }
}

/** Batches already stored for this import (a resumed reading skips their lines). */
function isDone(done: [number, number][], line: number): boolean {
  return done.length > 0 && done.some(([first, last]) => line >= first && line <= last);
}

function csvQuote(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The header as written (without BOM and line end), to head the rejects file. */
async function headerLine(file: string): Promise<string> {
  let text = '';
  for await (const chunk of createReadStream(file, { start: 0, end: 4095, encoding: 'utf8' })) {
    text += chunk as string;
    if (text.includes('\n')) break;
  }
  return text.replace(/^\ufeff/, '').split('\n')[0]!.replace(/\r$/, '');
}

function closeStream(stream: WriteStream | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!stream) return resolve();
    stream.end((error?: Error | null) => (error ? reject(error) : resolve()));
  });
}

export { ApiRequestError };
