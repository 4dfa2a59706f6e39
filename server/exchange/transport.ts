// The one small interface both links to the exchange implement (websocket, AMQP 0-9-1): frames
// of JSON text in both directions, connection state as events, and settling of what was received.
import { EventEmitter } from 'node:events';

/** Opaque handle of one received frame, handed back to settle() once it is done with. */
export type Delivery = unknown;

export interface TransportEvents {
  /** Connected and receiving. */
  up: [];
  /** The link went away (`reason` says why); the transport reconnects by itself unless closed. */
  down: [reason: string];
  message: [text: string, delivery: Delivery];
}

export interface Transport extends EventEmitter<TransportEvents> {
  readonly kind: 'ws' | 'amqp';
  /**
   * True when a new connection brings back by itself whatever was received but not settled (a
   * durable queue redelivers unacknowledged messages); a websocket does not, and needs `resume`.
   */
  readonly redelivers: boolean;
  readonly connected: boolean;
  /** Connections opened so far. */
  readonly connections: number;
  /** Starts connecting (and reconnecting after every loss, with backoff) until close(). */
  start(): void;
  /**
   * Sends one frame; resolves once the link has accepted it (websocket: written to the open
   * socket; AMQP: confirmed by the broker), rejects when not connected or refused.
   */
  send(text: string): Promise<void>;
  /**
   * The frames are done with: their content is committed, or they will come again. Frames are
   * settled in the order they were received; AMQP acknowledges them, a websocket has nothing to do.
   */
  settle(deliveries: readonly Delivery[]): void;
  /** Stop and resume reading (backpressure while too much waits for the database). */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export class NotConnectedError extends Error {
  constructor(what: string) {
    super(`not connected to the exchange (${what})`);
    this.name = 'NotConnectedError';
  }
}

/**
 * Reconnect delay after `attempt` failed attempts (0 = the first reconnect): doubling from
 * `minMs`, capped at `maxMs`, with "equal jitter" (between half and all of it), so it is never 0
 * and redundant gateways do not reconnect in lockstep.
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + random() * (cap / 2));
}

export interface LinkOptions {
  /** Heartbeat: ping every this many ms (websocket), or the AMQP heartbeat (rounded up to seconds). */
  heartbeatMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  random: () => number;
}
