// Terminal PnL report over the REST API (and Socket.IO with --watch):
//   npm run report -- --trader ID --day YYYY-MM-DD [--format table|csv|json] [--watch]
import { io, type Socket } from 'socket.io-client';
import { formatClock, formatCount, formatMoney, formatMw } from '../server/format';
import { apiBase, ApiUrlError, type ApiBase } from '../server/http/api-url';
import type { ClientToServerEvents, PnlHourRow, PnlReport, ServerToClientEvents } from '../server/live/events';
import { applyUpdate, parseReportArgs, render, usage, useColor, type ReportArgs } from '../server/reports/format';

class Failure extends Error {}

let api: ApiBase;
const user = process.env.API_USER;
const password = process.env.API_PASSWORD ?? '';
const authorization = user ? `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` : undefined;

async function fetchReport(args: ReportArgs): Promise<PnlReport> {
  const url = `${api.base}/v1/reports/pnl?${new URLSearchParams({ trader_id: args.trader, delivery_day: args.day })}`;
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/json', ...(authorization ? { authorization } : {}) }, signal: AbortSignal.timeout(15_000) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new Failure(`cannot reach the API at ${api.base} (${cause?.code ?? cause?.message ?? (error as Error).message}); is the server running? Set API_URL.`);
  }
  const type = res.headers.get('content-type') ?? '';
  // Not the powerdesk API (a proxy's error page, another web server): say so instead of guessing.
  if (!type.includes('json')) {
    throw new Failure(`${url.split('?')[0]} answered ${res.status} with ${type || 'no content type'}, not JSON; API_URL must be the powerdesk server, e.g. http://localhost:8080`);
  }
  const body = (await res.json().catch(() => undefined)) as { message?: string; hours?: unknown } | undefined;
  if (res.status === 401) throw new Failure(`the API refused the credentials (${body?.message ?? 'unauthorized'}); set API_USER and API_PASSWORD`);
  if (!res.ok) throw new Failure(`the API answered ${res.status}: ${body?.message ?? res.statusText}`);
  if (!body || !Array.isArray(body.hours)) throw new Failure(`${url.split('?')[0]} answered JSON that is not a PnL report; API_URL must be the powerdesk server, e.g. http://localhost:8080`);
  return body as unknown as PnlReport;
}

const tty = Boolean(process.stdout.isTTY);

function footer(report: PnlReport): string {
  return `updated at ${formatClock(new Date(), report.timezone)} (market time, ${report.timezone}) · Ctrl-C to stop\n`;
}

/** One line per hour or product that differs from the last report shown, then the day's total. */
function changedLines(before: PnlReport, after: PnlReport): string[] {
  const key = (h: Pick<PnlHourRow, 'trades' | 'buy_mw' | 'sell_mw' | 'pnl_eur'>) => `${h.trades}|${h.buy_mw}|${h.sell_mw}|${h.pnl_eur}`;
  const line = (label: string, r: Pick<PnlHourRow, 'trades' | 'buy_mw' | 'sell_mw' | 'pnl_eur'>) =>
    `${label}: ${formatCount(r.trades)} trades, buy ${formatMw(r.buy_mw)} MW, sell ${formatMw(r.sell_mw)} MW, PnL ${formatMoney(r.pnl_eur)}`;
  const old = new Map<string, string>();
  for (const h of before.hours) {
    old.set(h.delivery_start, key(h));
    for (const p of h.products ?? []) old.set(`${p.delivery_start}/${p.delivery_end}`, key(p));
  }
  const out: string[] = [];
  for (const h of after.hours) {
    if (old.get(h.delivery_start) !== key(h)) out.push(line(h.label, h));
    for (const p of h.products ?? []) if (old.get(`${p.delivery_start}/${p.delivery_end}`) !== key(p)) out.push(line(`  ${p.period}`, p));
  }
  return out;
}

function draw(report: PnlReport, args: ReportArgs, previous?: PnlReport): void {
  // JSON while watching: one report per line, so another program can read the stream.
  if (args.watch && args.format === 'json') return void process.stdout.write(`${JSON.stringify(report)}\n`);
  if (tty && args.format === 'table') {
    if (!args.watch) return void process.stdout.write(render(report, 'table', { color: useColor(process.stdout) }));
    // A terminal while watching: the table redrawn in place, with when and how to stop.
    process.stdout.write(`\x1b[2J\x1b[H${render(report, 'table', { color: useColor(process.stdout) })}\n${footer(report)}`);
    return;
  }
  if (!previous) return void process.stdout.write(render(report, args.format, { color: false }));
  // Not a terminal: the whole report once, then only what changed, one line each.
  const at = formatClock(new Date(), report.timezone);
  const lines = changedLines(previous, report);
  if (!lines.length) return;
  const total = `day total: ${formatCount(report.total.trades)} trades, PnL ${formatMoney(report.total.pnl_eur)}`;
  process.stdout.write(`${lines.map((l) => `${at} ${l}`).join('\n')}\n${at} ${total}\n`);
}

function watch(args: ReportArgs, initial: PnlReport): Promise<never> {
  let report = initial;
  const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(api.origin, {
    path: `${api.prefix}/socket.io`,
    extraHeaders: authorization ? { Authorization: authorization } : {},
    transports: ['websocket'],
  });
  return new Promise((_resolve, reject) => {
    socket.on('connect', () => {
      if (socket.recovered) return; // missed updates are replayed
      socket.emit('subscribe', { trader_id: args.trader, delivery_day: args.day }, (ack) => {
        if (!ack.ok) return reject(new Failure(`live updates refused: ${ack.error}`));
        // A fresh snapshot after every unrecovered (re)connect; shown only if it differs.
        const previous = report;
        report = ack.report;
        if (JSON.stringify(previous) !== JSON.stringify(report)) draw(report, args, previous);
      });
    });
    socket.on('connect_error', (error) => {
      if (!socket.active) reject(new Failure(`live updates refused: ${error.message}`));
    });
    socket.on('pnl', (update) => {
      const previous = report;
      report = applyUpdate(report, update);
      draw(report, args, previous);
    });
    const stop = () => { socket.close(); process.exit(0); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

async function main(): Promise<number> {
  const parsed = parseReportArgs(process.argv.slice(2));
  if (!parsed.ok) {
    process.stderr.write(`report: ${parsed.message}\n${usage}\n`);
    return 2;
  }
  if ('help' in parsed) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const { args } = parsed;
  try {
    api = apiBase(process.env.API_URL || 'http://localhost:8080');
  } catch (error) {
    if (!(error instanceof ApiUrlError)) throw error;
    process.stderr.write(`report: ${error.message}\n`);
    return 2;
  }
  try {
    const report = await fetchReport(args);
    draw(report, args);
    if (args.watch) await watch(args, report);
    return 0;
  } catch (error) {
    if (error instanceof Failure) {
      process.stderr.write(`report: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

main().then((code) => { process.exitCode = code; }, (error: Error) => {
  process.stderr.write(`report: ${error.stack ?? error.message}\n`);
  process.exitCode = 1;
});
