// One database as several server processes see it, for testing their coordination without a
// TimescaleDB server: each process gets a view of its own whose NOTIFY deliveries can be held back
// (a postgres.js LISTEN connection hears them at its own pace, possibly after a write's answer),
// and all views watch refreshes of continuous aggregates, refusing overlapping ones the way
// TimescaleDB >= 2.26.3 does when asked to.
import type { Db, Queryable } from '../../server/db';
import { render, type SqlQuery } from '../../server/db/sql';

/** TimescaleDB's words, as a server says them (DETAIL names the window). */
export const concurrentRefreshMessage = 'could not refresh continuous aggregate "pnl_hourly" due to a concurrent refresh';

export class RefreshWatch {
  /** Refreshes running now, on any view (and outside ones, see outsideRefresh). */
  running = 0;
  /** Refreshes asked for while another was running. */
  overlapping = 0;
  constructor(private readonly refuse: boolean) {}

  /** A refresh by someone outside the processes (a policy, an operator's CALL) until the returned function is called. */
  outsideRefresh(): () => void {
    this.running += 1;
    let done = false;
    return () => { if (!done) { done = true; this.running -= 1; } };
  }

  async around<T>(run: () => Promise<T>): Promise<T> {
    if (this.running > 0) {
      this.overlapping += 1;
      if (this.refuse) throw new Error(concurrentRefreshMessage);
    }
    this.running += 1;
    try {
      return await run();
    } finally {
      this.running -= 1;
    }
  }
}

const isRefresh = (query: SqlQuery) => /^\s*CALL refresh_continuous_aggregate/i.test(render(query).text);

/** The view of one process: `inner` may be shared (embedded) or its own pool (a server). */
export class ProcessDb implements Db {
  readonly kind: Db['kind'];
  private held?: (() => void)[];

  constructor(private readonly inner: Db, private readonly watch: RefreshWatch) {
    this.kind = inner.kind;
  }

  /** From now on, notifications wait until releaseNotifications(). */
  holdNotifications(): void {
    this.held ??= [];
  }

  releaseNotifications(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const deliver of held) deliver();
  }

  query<T extends object>(query: SqlQuery): Promise<T[]> {
    return isRefresh(query) ? this.watch.around(() => this.inner.query<T>(query)) : this.inner.query<T>(query);
  }

  bulkInsert(...args: Parameters<Db['bulkInsert']>) { return this.inner.bulkInsert(...args); }
  transaction<T>(fn: (tx: Queryable) => Promise<T>) { return this.inner.transaction(fn); }
  execScript(...args: Parameters<Db['execScript']>) { return this.inner.execScript(...args); }
  exclusive<T>(lock: number, fn: () => Promise<T>) { return this.inner.exclusive(lock, fn); }
  notify(channel: string, payload: string) { return this.inner.notify(channel, payload); }
  advisoryLock(namespace: number, key: number) { return this.inner.advisoryLock(namespace, key); }

  listen(channel: string, onPayload: (payload: string) => void) {
    return this.inner.listen(channel, (payload) => {
      if (this.held) this.held.push(() => onPayload(payload));
      else onPayload(payload);
    });
  }

  /** The inner database belongs to the test. */
  async close(): Promise<void> {}
}
