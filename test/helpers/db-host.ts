// One embedded database shared by several server processes, for tests that kill a process: the
// test process holds the database (like a database server outlives its clients) and each child
// process reaches it through its IPC channel with RemoteDb. A child that dies, even by kill -9,
// has its open transactions rolled back, its locks released and its LISTENs dropped, as a server
// does when a connection is lost. Embedded semantics otherwise: one connection, statements queued.
import type { ChildProcess } from 'node:child_process';
import type { Db, Queryable } from '../../server/db';
import type { HeldLock } from '../../server/db/types';
import { isSqlQuery, sql, type SqlQuery } from '../../server/db/sql';

type WireQuery = { strings: string[]; values: unknown[] };
type Request =
  | { op: 'query'; q: WireQuery; tx?: number }
  | { op: 'bulkInsert'; args: Parameters<Db['bulkInsert']>; tx?: number }
  | { op: 'begin' | 'commit' | 'rollback'; tx: number }
  | { op: 'lock' | 'unlock'; ex: number; lock?: number }
  | { op: 'execScript'; text: string; options?: { transaction?: boolean } }
  | { op: 'listen' | 'unlisten'; sub: number; channel?: string }
  | { op: 'notify'; channel: string; payload: string }
  | { op: 'advisoryLock' | 'advisoryUnlock'; key: string };
type Message = { id: number; req: Request };
type Reply = { id: number; ok: true; value?: unknown } | { id: number; ok: false; message: string };
type Push = { notify: number; payload: string };

const toWire = (q: SqlQuery): WireQuery => ({ strings: [...q.strings], values: q.values.map((v) => (isSqlQuery(v) ? { __sql: toWire(v) } : v)) });
const fromWire = (w: WireQuery): SqlQuery => sql(
  Object.assign([...w.strings], { raw: [...w.strings] }) as unknown as TemplateStringsArray,
  ...w.values.map((v) => (v && typeof v === 'object' && '__sql' in v ? fromWire((v as { __sql: WireQuery }).__sql) : v)),
);

/** Advisory locks by key: which child holds each (the embedded database has one session for all). */
const advisoryHolders = new Map<string, ChildProcess>();

/** Serves `inner` to `child` (spawned with an 'ipc' stdio entry and advanced serialization). */
export function serveDb(inner: Db, child: ChildProcess): void {
  const txs = new Map<number, { tx: Queryable; end: (commit: boolean) => void; done: Promise<void> }>();
  const exclusives = new Map<number, () => void>();
  const subs = new Map<number, Promise<() => Promise<void>>>();
  let gone = false; // the child exited: what it asked for and gets only now is undone at once
  const send = (m: Reply | Push) => { if (child.connected) child.send(m, () => {}); }; // a dead child's pipe: nothing to tell

  const handle = async (req: Request): Promise<unknown> => {
    const on = (tx?: number): Queryable => {
      if (tx === undefined) return inner;
      const open = txs.get(tx);
      if (!open) throw new Error(`no open transaction ${tx}`);
      return open.tx;
    };
    switch (req.op) {
      case 'query': return on(req.tx).query(fromWire(req.q));
      case 'bulkInsert': return on(req.tx).bulkInsert(...req.args);
      case 'begin': return new Promise<void>((entered, failed) => {
        let end!: (commit: boolean) => void;
        const body = new Promise<void>((commit, rollback) => { end = (ok) => (ok ? commit() : rollback(new Error('rolled back'))); });
        const entry = { tx: inner as Queryable, end, done: Promise.resolve() };
        entry.done = inner.transaction(async (tx) => {
          if (gone) throw new Error('rolled back');
          entry.tx = tx;
          txs.set(req.tx, entry);
          entered();
          await body;
        }).catch((error: Error) => { if (error.message !== 'rolled back') throw error; });
        entry.done.catch(failed);
      });
      case 'commit':
      case 'rollback': {
        const open = txs.get(req.tx);
        if (!open) throw new Error(`no open transaction ${req.tx}`);
        txs.delete(req.tx);
        open.end(req.op === 'commit');
        return open.done;
      }
      case 'lock': return new Promise<void>((entered) => {
        void inner.exclusive(req.lock!, () => new Promise<void>((release) => {
          if (gone) return release();
          exclusives.set(req.ex, release);
          entered();
        }));
      });
      case 'unlock': exclusives.get(req.ex)?.(); exclusives.delete(req.ex); return undefined;
      case 'execScript': return inner.execScript(req.text, req.options);
      case 'listen': subs.set(req.sub, inner.listen(req.channel!, (payload) => send({ notify: req.sub, payload }))); await subs.get(req.sub); return undefined;
      case 'unlisten': { const un = subs.get(req.sub); subs.delete(req.sub); if (un) await (await un)(); return undefined; }
      case 'notify': return inner.notify(req.channel, req.payload);
      case 'advisoryLock': {
        const holder = advisoryHolders.get(req.key);
        if (holder && holder !== child && holder.exitCode === null && holder.signalCode === null) return false;
        advisoryHolders.set(req.key, child);
        return true;
      }
      case 'advisoryUnlock': if (advisoryHolders.get(req.key) === child) advisoryHolders.delete(req.key); return undefined;
    }
  };

  child.on('message', (m: Message) => {
    handle(m.req).then((value) => send({ id: m.id, ok: true, value }), (error: Error) => send({ id: m.id, ok: false, message: error.message }));
  });
  // The connection is gone: what a database server does for a lost session.
  child.once('exit', () => {
    gone = true;
    for (const [id, open] of txs) { txs.delete(id); open.end(false); }
    for (const release of exclusives.values()) release();
    exclusives.clear();
    for (const un of subs.values()) void un.then((f) => f()).catch(() => {});
    subs.clear();
    for (const [key, holder] of advisoryHolders) if (holder === child) advisoryHolders.delete(key);
  });
}

/** The child's side: a Db whose every call goes to the parent's serveDb. */
export class RemoteDb implements Db {
  readonly kind = 'embedded' as const;
  private next = 0;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private listeners = new Map<number, (payload: string) => void>();

  constructor() {
    if (!process.send) throw new Error('RemoteDb needs an IPC channel to the process that holds the database');
    process.on('message', (m: Reply | Push) => {
      if ('notify' in m) return this.listeners.get(m.notify)?.(m.payload);
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(m.message));
    });
  }

  private call<T>(req: Request): Promise<T> {
    const id = ++this.next;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      process.send!({ id, req } satisfies Message);
    });
  }

  private on(tx?: number): Queryable {
    return {
      query: <T extends object>(q: SqlQuery) => this.call<T[]>({ op: 'query', q: toWire(q), tx }),
      bulkInsert: (...args: Parameters<Db['bulkInsert']>) => this.call<number>({ op: 'bulkInsert', args, tx }),
    };
  }

  query<T extends object>(q: SqlQuery): Promise<T[]> { return this.on().query<T>(q); }
  bulkInsert(...args: Parameters<Db['bulkInsert']>): Promise<number> { return this.on().bulkInsert(...args); }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const tx = ++this.next;
    await this.call({ op: 'begin', tx });
    let value: T;
    try {
      value = await fn(this.on(tx));
    } catch (error) {
      await this.call({ op: 'rollback', tx }).catch(() => {});
      throw error;
    }
    await this.call({ op: 'commit', tx });
    return value;
  }

  execScript(text: string, options?: { transaction?: boolean }): Promise<void> { return this.call({ op: 'execScript', text, options }); }

  async exclusive<T>(lock: number, fn: () => Promise<T>): Promise<T> {
    const ex = ++this.next;
    await this.call({ op: 'lock', ex, lock });
    try {
      return await fn();
    } finally {
      await this.call({ op: 'unlock', ex });
    }
  }

  async listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>> {
    const sub = ++this.next;
    this.listeners.set(sub, onPayload);
    await this.call({ op: 'listen', sub, channel });
    return async () => { this.listeners.delete(sub); await this.call({ op: 'unlisten', sub }); };
  }

  notify(channel: string, payload: string): Promise<void> { return this.call({ op: 'notify', channel, payload }); }

  async advisoryLock(namespace: number, key: number): Promise<HeldLock | null> {
    const k = `${namespace}:${key}`;
    if (!(await this.call<boolean>({ op: 'advisoryLock', key: k }))) return null;
    return { renew: async () => true, release: () => this.call({ op: 'advisoryUnlock', key: k }) };
  }

  async close(): Promise<void> {}
}
