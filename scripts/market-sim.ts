// Market-data provider simulator: the market-data provider's API (GET /v1/reference-price, also
// without /v1), serving the volume-weighted average price per hour of the exchange simulator's
// hourly deals. An hour without deals answers 404 ("no deals yet"). Values are republished every
// --update-ms (the real provider: about every 10 minutes). `npm run market-sim -- --port 9002
// --exchange ws://localhost:9001`; tests start it in-process with startMarketSim().
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import type { ExchangeSim, SimDeal } from './exchange-sim';
import { parseOptions } from './cli';

export interface MarketSimOptions {
  port?: number;
  host?: string;
  /** Connect to this exchange simulator as a websocket client ... */
  exchangeUrl?: string;
  /** ... or listen to one running in this process. */
  exchange?: ExchangeSim;
  /** Publish new averages this often; 0 publishes at once. */
  updateMs?: number;
  /** Answer 200 with value null instead of 404 for hours without deals. */
  nullForNoDeals?: boolean;
  /** Share of requests answered 500 / delay of every answer (to exercise the poller). */
  errorRate?: number;
  delayMs?: number;
  now?: () => Date;
}

export interface MarketSim {
  url: string;
  port: number;
  requests: number;
  /** Takes a deal into the averages (called for every deal the exchange sends). */
  observe(deal: SimDeal): void;
  /** Publishes the current averages now. */
  publish(): void;
  close(): Promise<void>;
}

const hourly = /^(\d{2})-(\d{2})([AB])?$/;

export async function startMarketSim(options: MarketSimOptions = {}): Promise<MarketSim> {
  const now = options.now ?? (() => new Date());
  const sums = new Map<string, { pq: number; q: number; changed: boolean }>();
  const published = new Map<string, { value: number; last_update: string }>();
  const key = (day: string, hour: string) => `${day}|${hour.replace(/A$/, '')}`;

  const observe = (deal: SimDeal) => {
    if (!hourly.test(deal.delivery_hour)) return; // quarter hours are other products
    const k = key(deal.delivery_day, deal.delivery_hour);
    const s = sums.get(k) ?? { pq: 0, q: 0, changed: false };
    s.pq += deal.price * deal.quantity;
    s.q += deal.quantity;
    s.changed = true;
    sums.set(k, s);
    if (!options.updateMs) publish();
  };
  const publish = () => {
    const at = now().toISOString().replace(/\.\d{3}Z$/, 'Z');
    for (const [k, s] of sums) {
      if (!s.changed || s.q === 0) continue;
      published.set(k, { value: Math.round((s.pq / s.q) * 100) / 100, last_update: at });
      s.changed = false;
    }
  };

  let ws: WebSocket | undefined;
  let closed = false;
  const connect = () => {
    if (closed || !options.exchangeUrl) return;
    ws = new WebSocket(options.exchangeUrl);
    ws.on('message', (data) => {
      try {
        const msg = JSON.parse(data.toString()) as Record<string, SimDeal>;
        const deal = msg.deal_confirmation ?? msg.trade_confirmation;
        if (deal && typeof deal.price === 'number' && typeof deal.quantity === 'number' && deal.quantity > 0) observe(deal);
      } catch { /* malformed frames are the exchange sim's test material, not prices */ }
    });
    ws.on('error', () => {});
    ws.on('close', () => { if (!closed) setTimeout(connect, 1000); });
  };
  connect();
  options.exchange?.on('deal', observe);

  const sim: MarketSim = {
    url: '', port: 0, requests: 0, observe, publish,
    async close() {
      closed = true;
      clearInterval(timer);
      options.exchange?.off('deal', observe);
      ws?.terminate();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const timer = setInterval(publish, options.updateMs || 60_000);
  timer.unref?.();

  const server = http.createServer((req, res) => {
    sim.requests += 1;
    const answer = (status: number, body: unknown) => {
      const send = () => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)); };
      if (options.delayMs) setTimeout(send, options.delayMs); else send();
    };
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' || !/^(\/v1)?\/reference-price$/.test(url.pathname)) return answer(404, { message: 'not found' });
    const day = url.searchParams.get('delivery_day');
    const hour = url.searchParams.get('delivery_hour');
    if (!day || !/^\d{4}-\d{2}-\d{2}$/.test(day)) return answer(400, { message: 'delivery_day: required, YYYY-MM-DD' });
    if (!hour || !hourly.test(hour)) return answer(400, { message: 'delivery_hour: required, HH-HH' });
    if (options.errorRate && Math.random() < options.errorRate) return answer(500, { message: 'internal error (simulated)' });
    const value = published.get(key(day, hour));
    if (!value) return options.nullForNoDeals ? answer(200, { delivery_day: day, delivery_hour: hour, value: null, unit: 'EUR/MWh', last_update: null }) : answer(404, { message: 'no deals yet' });
    return answer(200, { delivery_day: day, delivery_hour: hour, value: value.value, unit: 'EUR/MWh', last_update: value.last_update });
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve()); });
  sim.port = (server.address() as AddressInfo).port;
  sim.url = `http://127.0.0.1:${sim.port}/v1`;
  return sim;
}

async function main() {
  const { values } = parseOptions('market-sim', {
    options: {
      port: { type: 'string', default: '9002' }, exchange: { type: 'string', default: 'ws://localhost:9001' },
      'update-ms': { type: 'string', default: '60000' }, 'error-rate': { type: 'string', default: '0' },
      'delay-ms': { type: 'string', default: '0' }, 'null-for-no-deals': { type: 'boolean', default: false },
    },
  });
  const num = (name: 'port' | 'update-ms' | 'error-rate' | 'delay-ms') => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < 0) { process.stderr.write(`market-sim: --${name} must be a non-negative number (got ${values[name]})\n`); process.exit(2); }
    return n;
  };
  const sim = await startMarketSim({
    port: num('port'), host: '0.0.0.0', exchangeUrl: values.exchange, updateMs: num('update-ms'),
    errorRate: num('error-rate'), delayMs: num('delay-ms'), nullForNoDeals: values['null-for-no-deals'],
  });
  process.stdout.write(`${JSON.stringify({ msg: 'market-data simulator listening', url: `http://localhost:${sim.port}/v1`, exchange: values.exchange })}\n`);
  const stop = () => { void sim.close().then(() => process.exit(0)); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) void main();
