// The websocket link to the exchange: keeps one connection alive (heartbeat, reconnect with
// capped exponential backoff and jitter). A new connection starts with nothing of the old one:
// the session asks the exchange to `resume`.
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import type { Logger } from '../log';
import { backoffDelay, NotConnectedError, type Delivery, type LinkOptions, type Transport, type TransportEvents } from './transport';

export class WsTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly kind = 'ws';
  readonly redelivers = false;
  connected = false;
  connections = 0;
  private ws?: WebSocket;
  private attempt = 0;
  private closing = false;
  private paused = false;
  private reconnectTimer?: NodeJS.Timeout;
  private heartbeatTimer?: NodeJS.Timeout;
  private ponged = true;
  private missed = 0;

  constructor(private readonly url: string, private readonly o: LinkOptions, private readonly log: Logger) {
    super();
  }

  start(): void {
    this.connect();
  }

  send(text: string): Promise<void> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new NotConnectedError(this.url));
    return new Promise((resolve, reject) => ws.send(text, (error) => (error ? reject(error) : resolve())));
  }

  settle(_deliveries: readonly Delivery[]): void {}

  pause(): void {
    this.paused = true;
    this.ws?.pause(); // TCP holds the rest at the exchange instead of our memory
  }

  resume(): void {
    this.paused = false;
    this.ws?.resume();
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    const ws = this.ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => { ws.once('close', () => resolve()); ws.terminate(); });
    }
  }

  private connect(): void {
    if (this.closing) return;
    const ws = new WebSocket(this.url, { handshakeTimeout: Math.max(2 * this.o.heartbeatMs, 1000), perMessageDeflate: false });
    this.ws = ws;
    let opened = false;
    let downReason = 'connection failed';
    ws.on('open', () => {
      opened = true;
      this.attempt = 0;
      this.connections += 1;
      this.connected = true;
      this.ponged = true;
      this.missed = 0;
      if (this.paused) ws.pause(); // a new socket starts reading; hold it while still full
      this.heartbeatTimer = setInterval(() => this.heartbeat(ws), this.o.heartbeatMs);
      this.emit('up');
    });
    ws.on('pong', () => { this.ponged = true; });
    ws.on('message', (data, isBinary) => this.emit('message', isBinary ? Buffer.from(data as Buffer).toString('utf8') : data.toString(), undefined));
    ws.on('error', (error) => { downReason = error.message; this.log.warn('exchange connection error', { url: this.url, error: error.message }); });
    ws.on('close', (code, reason) => {
      clearInterval(this.heartbeatTimer);
      if (opened && this.connected) {
        this.connected = false;
        const why = this.closing ? 'gateway stopping' : downReason !== 'connection failed' ? downReason : `closed with code ${code}${reason.length ? ` (${reason.toString()})` : ''}`;
        this.emit('down', why);
      }
      this.scheduleReconnect();
    });
  }

  /**
   * Counted in ticks, not wall time: when our own event loop stalls (a long query), the pong
   * waits in the socket while the timer fires late, and wall time would blame the exchange.
   */
  private heartbeat(ws: WebSocket): void {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (this.paused) { this.ponged = true; return; } // we are not reading: a pong could not reach us
    if (this.ponged) this.missed = 0;
    else this.missed += 1;
    if (this.missed >= 2) {
      this.log.warn('no pong from the exchange for two heartbeat intervals: terminating the connection', { url: this.url });
      ws.emit('error', new Error(`no pong for ${2 * this.o.heartbeatMs} ms`));
      ws.terminate();
      return;
    }
    this.ponged = false;
    ws.ping();
  }

  private scheduleReconnect(): void {
    if (this.closing) return;
    const delay = backoffDelay(this.attempt, this.o.backoffMinMs, this.o.backoffMaxMs, this.o.random);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }
}
