// The outbox dispatcher: sends what trading transactions wrote to the outbox (orders, cancels,
// replaces for the exchange; domain events for a RabbitMQ topic exchange) at least once.
// Dispatchers in any number of processes claim rows with FOR UPDATE SKIP LOCKED and a lease, so
// no two send one row at the same time; a row is marked sent after its transport accepted it.
// A crash between send and mark sends it again after the lease: the exchange answers a repeated
// order_new with the order's current state (never a second order), and cancels and replaces
// carry absolute values. A row waits while an earlier row of the same order is unsent.
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock';
import { systemClock } from '../clock';
import type { Db } from '../db';
import { sql } from '../db';
import type { Logger } from '../log';

export interface OutboxRow {
  id: number;
  destination: 'exchange' | 'events';
  routing_key: string | null;
  frame: unknown;
}

export interface DispatcherOptions {
  db: Db;
  destination: 'exchange' | 'events';
  /** Resolves once the transport accepted the frame; rejects when it cannot (not connected). */
  send: (row: OutboxRow) => Promise<void>;
  /** Whether sending can work now (the session is connected). */
  ready: () => boolean;
  log: Logger;
  clock?: Clock;
  /** A claim not marked sent within this long is taken again (by this or another dispatcher). */
  leaseMs?: number;
  /** Look for rows this often besides being woken. */
  pollMs?: number;
  batch?: number;
  id?: string;
}

export class OutboxDispatcher {
  readonly id: string;
  sent = 0;
  private readonly o: Required<Omit<DispatcherOptions, 'id' | 'clock'>> & { clock: Clock };
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private closed = false;
  /** Sends of rows claimed at their insert, still under way. */
  private readonly claimedRuns = new Set<Promise<void>>();

  constructor(options: DispatcherOptions) {
    this.id = options.id ?? `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.o = { leaseMs: 10_000, pollMs: 250, batch: 500, clock: systemClock, ...options };
  }

  start(): void {
    this.timer = setInterval(() => this.wake(), this.o.pollMs);
    this.timer.unref?.();
    this.wake();
  }

  /** Sends what is waiting now (coalesced: one run at a time, another right after if woken meanwhile). */
  wake(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop().finally(() => { this.running = undefined; });
  }

  /** Resolves when the current run is done. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.idle();
    await Promise.all(this.claimedRuns);
  }

  /**
   * The claim a writer may put on new rows it commits (claimed_by, claimed_until), when this
   * dispatcher can send now: it then sends them itself right after the commit (sendClaimed),
   * without a claim of its own. Undefined while it cannot send: the rows wait for any dispatcher.
   * Rows whose writer died are sent by any dispatcher once the lease passed.
   */
  lease(): { by: string; until: Date } | undefined {
    if (this.closed || !this.o.ready()) return undefined;
    return { by: this.id, until: new Date(this.o.clock.now().getTime() + this.o.leaseMs) };
  }

  /**
   * Sends committed rows claimed under lease() and marks them sent (unsent ones are freed for
   * the next attempt). Only for rows no earlier unsent row of their order can precede (an
   * order's first message).
   */
  sendClaimed(rows: OutboxRow[]): void {
    if (this.closed || !rows.length) return;
    const run = this.deliver(rows).then((failed) => {
      if (failed) {
        this.o.log.warn('outbox: sending failed; the messages stay queued', { destination: this.o.destination, error: failed.message });
        this.wake();
      }
    });
    this.claimedRuns.add(run);
    void run.finally(() => this.claimedRuns.delete(run));
  }

  /** Sends claimed rows in order (the transport pipelines them) and marks what went; the first error, if any. */
  private async deliver(rows: OutboxRow[]): Promise<Error | undefined> {
    const sent: number[] = [];
    let failed: Error | undefined;
    const results = await Promise.allSettled(rows.map((r) => this.o.send(r)));
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') sent.push(rows[i]!.id);
      else failed ??= r.reason as Error;
    });
    await this.markSent(sent, rows.filter((r) => !sent.includes(r.id)).map((r) => r.id), failed);
    this.sent += sent.length;
    return failed;
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      if (!this.o.ready()) return;
      let rows: OutboxRow[];
      try {
        rows = await this.claim();
      } catch (error) {
        this.o.log.warn('outbox: could not claim messages (tried again)', { error: (error as Error).message });
        return;
      }
      if (!rows.length) return;
      // Sent in order; the transport pipelines them (websocket writes, AMQP publisher confirms).
      const failed = await this.deliver(rows);
      if (failed) {
        this.o.log.warn('outbox: sending failed; the messages stay queued', { destination: this.o.destination, error: failed.message });
        return;
      }
      if (rows.length === this.o.batch) this.again = true;
    } while (this.again && !this.closed);
  }

  private async claim(): Promise<OutboxRow[]> {
    const now = this.o.clock.now();
    const until = new Date(now.getTime() + this.o.leaseMs);
    // One statement: the claim is taken and leased at once (SKIP LOCKED: never a row another is claiming).
    const rows = await this.o.db.query<OutboxRow>(sql`
      UPDATE outbox SET claimed_until = ${until}, claimed_by = ${this.id}, attempts = attempts + 1
      WHERE id IN (
        SELECT o.id FROM outbox o
        WHERE o.destination = ${this.o.destination} AND o.sent_at IS NULL AND (o.claimed_until IS NULL OR o.claimed_until < ${now})
          AND (o.order_id IS NULL OR NOT EXISTS (SELECT 1 FROM outbox e WHERE e.order_id = o.order_id AND e.id < o.id AND e.sent_at IS NULL))
        ORDER BY o.id LIMIT ${this.o.batch}
        FOR UPDATE SKIP LOCKED)
      RETURNING id, destination, routing_key, frame`);
    return rows.map((r) => ({ ...r, id: Number(r.id) })).sort((a, b) => a.id - b.id);
  }

  private async markSent(sent: number[], unsent: number[], error: Error | undefined): Promise<void> {
    const now = this.o.clock.now();
    try {
      if (sent.length) await this.o.db.query(sql`UPDATE outbox SET sent_at = ${now} WHERE id = ANY(${sent}::bigint[])`);
      // Not sent: free at once for the next attempt (a crash here leaves them to the lease).
      if (unsent.length) await this.o.db.query(sql`UPDATE outbox SET claimed_until = NULL, last_error = ${error?.message ?? null} WHERE id = ANY(${unsent}::bigint[]) AND claimed_by = ${this.id}`);
    } catch (e) {
      this.o.log.warn('outbox: could not mark messages sent (they are sent again after the lease)', { error: (e as Error).message });
    }
  }
}
