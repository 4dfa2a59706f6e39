// The client side of the exchange session (protocol version 2), over any Transport. Every
// message of the exchange carries a per-member seq; this keeps them in order, asks for
// `resume` after a reconnect or a gap, ignores what it already has, and commits the highest
// contiguous seq in the same transaction as the data its messages produced. Messages are
// dispatched by kind to handlers (registered by the capabilities that own them) inside that
// transaction, in micro-batches; a batch the database refuses is retried until it is taken.
// Frames without seq (a version 1 exchange) are handled the same way, without a seq to commit.
import { EventEmitter } from 'node:events';
import type { Clock } from '../clock';
import { systemClock } from '../clock';
import type { Db, Queryable } from '../db';
import { sql } from '../db';
import type { Logger } from '../log';
import { parseFrame, resumeFrame } from './frames';
import type { Delivery, Transport } from './transport';

/** One message of a known kind, as a handler gets it. */
export interface InboundMessage {
  /** null for a version 1 frame. */
  seq: number | null;
  /** Position in the order of arrival (this process). */
  arrival: number;
  kind: string;
  body: unknown;
  raw: string;
  receivedAt: Date;
}

/** A frame no handler can take: not JSON, not one known kind. Its seq (if any) is committed all the same. */
export interface UnreadableMessage {
  seq: number | null;
  arrival: number;
  raw: string;
  receivedAt: Date;
  reason: string;
}

/** Runs after the batch's transaction committed (counters, logs); never when it rolled back. */
export type AfterCommit = () => void;

/**
 * Handles the messages of one kind of a batch, in seq order, inside the batch's transaction
 * (which also commits their seq). A thrown error rolls the whole batch back; it is retried.
 */
export type MessageHandler = (tx: Queryable, messages: InboundMessage[]) => Promise<AfterCommit | void>;

export type MessageHandlers = Record<string, MessageHandler>;

export interface SessionOptions {
  db: Db;
  transport: Transport;
  /** The member the exchange numbers messages for: the resume point is kept per member. */
  member: string;
  gatewayId: string;
  handlers: MessageHandlers;
  /** Frames no handler takes (dead letters), in the same transaction. */
  unreadable: (tx: Queryable, messages: UnreadableMessage[]) => Promise<AfterCommit | void>;
  /** Last step of every batch's transaction, after the handlers (writes they collected). */
  finish?: (tx: Queryable) => Promise<AfterCommit | void>;
  clock?: Clock;
  log: Logger;
  batchMax?: number;
  batchMs?: number;
  /** Stop reading while this many frames wait for the database. */
  maxPending?: number;
  /** Database retry backoff. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Ask again when a requested replay has not started after this long ... */
  resumeTimeoutMs?: number;
  /** ... and after this many requests, give the missing seqs up as lost (the nightly file has them). */
  maxResumeAttempts?: number;
}

export interface SessionState {
  member: string;
  /** Highest contiguous seq committed with its data (0: none yet). */
  committed: number;
  /** Highest contiguous seq received (committed or waiting for the database). */
  received: number;
  /** Highest seq the exchange has sent that we saw. */
  exchangeSeq: number;
  /** Frames ignored: seqs already handled (replays, redeliveries) or beyond a gap being replayed. */
  ignored: number;
  resumesSent: number;
}

interface Item {
  seq: number | null;
  delivery: Delivery;
  message?: InboundMessage;
  unreadable?: UnreadableMessage;
  /** The exchange restarted its numbering at this item. */
  reset?: boolean;
}

interface Awaiting {
  /** First missing seq (received + 1 when it was asked). */
  from: number;
  /** Lowest seq seen beyond the missing ones (null: nothing seen yet, perhaps nothing is missing). */
  beyond: number | null;
  /** Checks since the request (websocket) or since the last frame arrived (AMQP) without the replay starting. */
  idle: number;
  attempts: number;
  gapId?: Promise<number | undefined>;
}

export interface SessionEvents {
  up: [];
  down: [reason: string];
  committed: [{ committed: number; messages: number }];
  gap: [{ from: number; to: number }];
  /** A batch could not be stored (the database failed); it is retried. */
  store_failed: [{ error: Error; attempt: number }];
}

export class ExchangeSession extends EventEmitter<SessionEvents> {
  readonly member: string;
  readonly transport: Transport;
  /** Times reading was paused because too much waited for the database. */
  pauses = 0;
  private readonly db: Db;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly handlers: MessageHandlers;
  private readonly kinds: string[];
  private readonly o: Required<Pick<SessionOptions, 'batchMax' | 'batchMs' | 'maxPending' | 'backoffMinMs' | 'backoffMaxMs' | 'resumeTimeoutMs' | 'maxResumeAttempts'>>;
  private committed = 0;
  private received = 0;
  private exchangeSeq = 0;
  private ignored = 0;
  private resumesSent = 0;
  private arrivals = 0;
  private awaiting?: Awaiting;
  /** Set on a new websocket connection until its first frame with a seq: the resume point sent. */
  private freshResume: number | null = null;
  private pending: Item[] = [];
  private current?: Item[];
  private flushing?: Promise<void>;
  private flushTimer?: NodeJS.Timeout;
  private resumeTimer?: NodeJS.Timeout;
  /** Checks that make up resumeTimeoutMs: counted in ticks, so a stall of our own event loop is one tick, not a timeout. */
  private ticksPerTimeout = 4;
  private paused = false;
  private closing = false;
  private gaveUp = false;
  private wake?: () => void;

  constructor(private readonly options: SessionOptions) {
    super();
    this.db = options.db;
    this.transport = options.transport;
    this.member = options.member;
    this.clock = options.clock ?? systemClock;
    this.log = options.log;
    this.handlers = options.handlers;
    this.kinds = Object.keys(options.handlers);
    this.o = {
      batchMax: options.batchMax ?? 1000,
      batchMs: options.batchMs ?? 20,
      maxPending: options.maxPending ?? 50_000,
      backoffMinMs: options.backoffMinMs ?? 500,
      backoffMaxMs: options.backoffMaxMs ?? 30_000,
      resumeTimeoutMs: options.resumeTimeoutMs ?? 5000,
      maxResumeAttempts: options.maxResumeAttempts ?? 3,
    };
    this.transport.on('up', () => this.onUp());
    this.transport.on('down', (reason) => { this.freshResume = null; this.emit('down', reason); });
    this.transport.on('message', (text, delivery) => this.receive(text, delivery));
  }

  get state(): SessionState {
    return { member: this.member, committed: this.committed, received: this.received, exchangeSeq: this.exchangeSeq, ignored: this.ignored, resumesSent: this.resumesSent };
  }

  get connected(): boolean {
    return this.transport.connected;
  }

  /** Reads the resume point and starts connecting. */
  async start(): Promise<void> {
    const now = this.clock.now();
    await this.db.query(sql`INSERT INTO exchange_sessions (member, updated_at) VALUES (${this.member}, ${now}) ON CONFLICT (member) DO NOTHING`);
    const [row] = await this.db.query<{ committed_seq: number; exchange_seq: number }>(sql`SELECT committed_seq, exchange_seq FROM exchange_sessions WHERE member = ${this.member}`);
    this.committed = this.received = row?.committed_seq ?? 0;
    this.exchangeSeq = row?.exchange_seq ?? 0;
    const tick = Math.max(20, Math.floor(this.o.resumeTimeoutMs / 4));
    this.ticksPerTimeout = Math.max(1, Math.ceil(this.o.resumeTimeoutMs / tick));
    this.resumeTimer = setInterval(() => this.checkResume(), tick);
    this.resumeTimer.unref?.();
    this.transport.start();
  }

  /** Sends one frame to the exchange; resolves once the transport accepted it, rejects when not connected. */
  send(frame: object | string): Promise<void> {
    return this.transport.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Resolves when every frame received so far is committed (or the session gave up while closing). */
  async drained(): Promise<void> {
    while ((this.pending.length || this.current) && !this.gaveUp) {
      this.scheduleFlush(0);
      await this.flushing;
    }
  }

  /** Frames received and not committed (closing with the database down loses them from memory; the exchange still has them). */
  get unstored(): Item[] {
    return [...(this.current ?? []), ...this.pending];
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.resumeTimer);
    await this.transport.close();
    this.wake?.();
    await this.drained().catch(() => {});
  }

  private onUp(): void {
    this.emit('up');
    if (this.paused) this.transport.pause();
    if (this.transport.redelivers) return; // the durable queue brings back whatever was not settled
    // A websocket starts from nothing: ask for everything after what is committed. What is
    // received but not committed yet comes again and is ignored.
    this.freshResume = this.committed;
    this.awaiting = { from: this.received + 1, beyond: null, idle: 0, attempts: 1 };
    this.requestResume(this.committed);
  }

  private requestResume(after: number): void {
    this.resumesSent += 1;
    this.send(resumeFrame(after)).catch((error: Error) => this.log.warn('could not send resume to the exchange', { after_seq: after, error: error.message }));
  }

  private receive(raw: string, delivery: Delivery): void {
    const receivedAt = this.clock.now();
    const frame = parseFrame(raw, this.kinds);
    const seq = frame.seq;
    const item: Item = { seq, delivery };
    const arrival = (this.arrivals += 1);
    if (frame.kind !== undefined) item.message = { seq, arrival, kind: frame.kind, body: frame.body, raw, receivedAt };
    else item.unreadable = { seq, arrival, raw, receivedAt, reason: frame.reason };
    if (seq !== null && !this.accept(seq, item)) {
      this.ignored += 1;
      // Nothing to store: it is settled with the batch it waits behind (in order).
      this.push({ seq, delivery });
      return;
    }
    this.push(item);
  }

  /** The sequence rules: true when the frame is the next one (or the first of a restarted numbering). */
  private accept(seq: number, item: Item): boolean {
    if (seq > this.exchangeSeq) this.exchangeSeq = seq;
    // Over AMQP a replay queues up behind what the queue already holds: while frames keep coming
    // it is on its way. A websocket replays at once: frames that keep coming prove nothing.
    if (this.awaiting && this.transport.redelivers) this.awaiting.idle = 0;
    const fresh = this.freshResume;
    this.freshResume = null;
    if (fresh !== null && seq <= fresh) {
      // A new connection's first frame at or below the resume point we sent: the exchange does not
      // know our numbering any more (it restarted its sequence). Start again from its numbers.
      this.log.error('the exchange restarted its sequence numbers: resuming from its numbering', { member: this.member, resume_after: fresh, got_seq: seq });
      this.committed = this.received = seq - 1;
      this.exchangeSeq = seq;
      this.awaiting = undefined;
      item.reset = true;
    }
    if (seq <= this.received) return false; // a replayed or redelivered duplicate
    if (seq === this.received + 1) {
      this.received = seq;
      this.awaiting = undefined;
      return true;
    }
    // A gap: everything from received + 1 to seq - 1 is missing.
    if (this.awaiting) {
      if (this.awaiting.beyond === null || seq < this.awaiting.beyond) this.awaiting.beyond = seq;
      if (!this.awaiting.gapId) this.awaiting.gapId = this.recordGap(this.awaiting.from, seq - 1);
      return false;
    }
    this.log.warn('gap in the exchange sequence: asking for a resume', { member: this.member, from_seq: this.received + 1, to_seq: seq - 1 });
    this.awaiting = { from: this.received + 1, beyond: seq, idle: 0, attempts: 1 };
    this.awaiting.gapId = this.recordGap(this.received + 1, seq - 1);
    this.requestResume(this.committed);
    return false;
  }

  /** A requested replay that has not started: ask again, and after a few tries give the missing seqs up. */
  private checkResume(): void {
    const a = this.awaiting;
    if (!a || !this.transport.connected) return;
    a.idle += 1;
    if (a.idle < this.ticksPerTimeout) return;
    if (a.beyond === null) { // nothing came at all: nothing was missing
      this.awaiting = undefined;
      return;
    }
    if (a.attempts < this.o.maxResumeAttempts) {
      a.attempts += 1;
      a.idle = 0;
      this.log.warn('the exchange did not replay the missing messages: asking again', { member: this.member, from_seq: a.from, to_seq: a.beyond - 1, attempt: a.attempts });
      this.requestResume(this.committed);
      return;
    }
    const lost = { from: a.from, to: a.beyond - 1 };
    this.log.error('the exchange cannot replay these messages: going on without them (the nightly file has their deals)', { member: this.member, from_seq: lost.from, to_seq: lost.to, attempts: a.attempts });
    this.awaiting = undefined;
    this.received = lost.to;
    void a.gapId?.then((id) => (id === undefined ? undefined : this.db.query(sql`UPDATE exchange_gaps SET lost_at = ${this.clock.now()} WHERE id = ${id}`)))
      .catch((error: Error) => this.log.warn('could not record a lost gap', { error: error.message }));
    this.requestResume(lost.to);
  }

  private recordGap(from: number, to: number): Promise<number | undefined> {
    this.emit('gap', { from, to });
    const now = this.clock.now();
    // Locks the session row: a batch committing past `to` meanwhile is seen, and the gap is filled at once.
    return this.db.transaction(async (tx) => {
      const [s] = await tx.query<{ committed_seq: number }>(sql`SELECT committed_seq FROM exchange_sessions WHERE member = ${this.member} FOR UPDATE`);
      const filled = s && s.committed_seq >= to ? now : null;
      const [row] = await tx.query<{ id: number }>(sql`
        INSERT INTO exchange_gaps (member, gateway_id, from_seq, to_seq, detected_at, filled_at)
        VALUES (${this.member}, ${this.options.gatewayId}, ${from}, ${to}, ${now}, ${filled}) RETURNING id`);
      return row?.id;
    }).catch((error: Error) => {
      this.log.warn('could not record a gap in the exchange sequence', { from_seq: from, to_seq: to, error: error.message });
      return undefined;
    });
  }

  private push(item: Item): void {
    this.pending.push(item);
    if (this.pending.length >= this.o.batchMax) this.scheduleFlush(0);
    else this.scheduleFlush(this.o.batchMs);
    if (!this.paused && this.pending.length >= this.o.maxPending) {
      this.paused = true;
      this.pauses += 1;
      this.transport.pause();
    }
  }

  private scheduleFlush(delayMs: number): void {
    if (this.flushing) return; // the running loop picks up whatever is pending
    if (delayMs > 0) {
      this.flushTimer ??= setTimeout(() => this.startFlush(), delayMs);
      return;
    }
    this.startFlush();
  }

  private startFlush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.flushing) return;
    this.flushing = this.flushLoop().finally(() => {
      this.flushing = undefined;
      if (this.pending.length && !this.gaveUp) this.scheduleFlush(0);
    });
  }

  /** The next batch: up to batchMax frames, a restarted numbering always opening a batch of its own. */
  private takeBatch(): Item[] {
    let n = Math.min(this.pending.length, this.o.batchMax);
    const reset = this.pending.findIndex((item, i) => i > 0 && i < n && item.reset);
    if (reset > 0) n = reset;
    return this.pending.splice(0, n);
  }

  private async flushLoop(): Promise<void> {
    let failures = 0;
    while (this.current || this.pending.length) {
      const batch = (this.current ??= this.takeBatch());
      try {
        await this.commit(batch);
        this.current = undefined;
        failures = 0;
      } catch (error) {
        failures += 1;
        this.log.error('could not store a batch of exchange messages; retrying', { size: batch.length, attempt: failures, error: (error as Error).message });
        this.emit('store_failed', { error: error as Error, attempt: failures });
        if (this.closing && failures >= 5) {
          this.gaveUp = true;
          return;
        }
        const wait = this.closing ? 200 : Math.min(this.o.backoffMaxMs, this.o.backoffMinMs * 2 ** Math.min(failures - 1, 10));
        await new Promise<void>((resolve) => { this.wake = resolve; setTimeout(resolve, wait); });
        this.wake = undefined;
      }
      if (this.paused && this.pending.length < this.o.maxPending / 2) {
        this.paused = false;
        this.transport.resume();
      }
    }
  }

  /** One transaction: lock the resume point, run the handlers on what is new, move the resume point. */
  private async commit(batch: Item[]): Promise<void> {
    const work = batch.filter((i) => i.message || i.unreadable);
    let after: (AfterCommit | void)[] = [];
    let committed = this.committed;
    let applied = 0;
    if (work.length) {
      const maxSeq = work.reduce((m, i) => (i.seq !== null && i.seq > m ? i.seq : m), 0);
      const now = this.clock.now();
      await this.db.transaction(async (tx) => {
        after = [];
        let todo = work;
        if (maxSeq > 0) {
          const reset = work.find((i) => i.reset);
          if (reset) {
            await tx.query(sql`UPDATE exchange_sessions SET committed_seq = ${reset.seq! - 1}, resets = resets + 1, reset_at = ${now} WHERE member = ${this.member}`);
            await tx.query(sql`UPDATE exchange_gaps SET lost_at = ${now} WHERE member = ${this.member} AND filled_at IS NULL AND lost_at IS NULL`);
          }
          // Redundant gateways: whatever another one committed meanwhile is skipped, so each
          // message's effects are applied exactly once whoever receives it.
          const [row] = await tx.query<{ committed_seq: number }>(sql`SELECT committed_seq FROM exchange_sessions WHERE member = ${this.member} FOR UPDATE`);
          const done = row?.committed_seq ?? 0;
          todo = work.filter((i) => i.seq === null || i.seq > done);
        }
        applied = todo.length;
        // One call per handler (kinds that share one, such as synonyms, go together), in the
        // order of their first message; each gets its messages in seq order.
        const byHandler = new Map<MessageHandler, InboundMessage[]>();
        const unreadable: UnreadableMessage[] = [];
        for (const item of todo) {
          if (item.message) {
            const handler = this.handlers[item.message.kind]!;
            const list = byHandler.get(handler) ?? [];
            list.push(item.message);
            byHandler.set(handler, list);
          } else unreadable.push(item.unreadable!);
        }
        for (const [handler, messages] of byHandler) after.push(await handler(tx, messages));
        if (unreadable.length) after.push(await this.options.unreadable(tx, unreadable));
        if (this.options.finish) after.push(await this.options.finish(tx));
        if (maxSeq > 0) {
          // The resume point moved, and the gaps it closed marked filled, in one statement.
          const [row] = await tx.query<{ committed_seq: number }>(sql`
            WITH moved AS (
              UPDATE exchange_sessions SET committed_seq = greatest(committed_seq, ${maxSeq}), exchange_seq = greatest(exchange_seq, ${this.exchangeSeq}), updated_at = ${now}
              WHERE member = ${this.member} RETURNING committed_seq
            ), filled AS (
              UPDATE exchange_gaps SET filled_at = ${now}
              WHERE member = ${this.member} AND filled_at IS NULL AND lost_at IS NULL AND to_seq <= coalesce((SELECT committed_seq FROM moved), ${maxSeq}::bigint)
            )
            SELECT committed_seq FROM moved`);
          committed = row?.committed_seq ?? maxSeq;
        }
      });
    }
    this.ignored += work.length - applied;
    if (committed > this.committed) this.committed = committed;
    if (this.committed > this.received) this.received = this.committed; // another gateway was ahead
    for (const f of after) f?.();
    this.transport.settle(batch.map((i) => i.delivery));
    this.emit('committed', { committed: this.committed, messages: applied });
  }
}
