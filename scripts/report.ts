// Terminal PnL report over the REST API (and Socket.IO with --watch):
//   npm run report -- --trader ID --day YYYY-MM-DD [--format table|csv|json] [--watch]
import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, PnlReport, ServerToClientEvents } from '../server/live/events';
import { applyUpdate, parseReportArgs, render, usage, useColor, type ReportArgs } from '../server/reports/format';

class Failure extends Error {}

const apiUrl = (process.env.API_URL || 'http://localhost:8080/v1').replace(/\/+$/, '');
const user = process.env.API_USER;
const password = process.env.API_PASSWORD ?? '';
const authorization = user ? `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` : undefined;

async function fetchReport(args: ReportArgs): Promise<PnlReport> {
  const url = `${apiUrl}/reports/pnl?${new URLSearchParams({ trader_id: args.trader, delivery_day: args.day })}`;
  let res: Response;
  try {
    res = await fetch(url, { headers: authorization ? { authorization } : {}, signal: AbortSignal.timeout(15_000) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new Failure(`cannot reach the API at ${apiUrl} (${cause?.code ?? cause?.message ?? (error as Error).message}); is the server running? Set API_URL.`);
  }
  const body = (await res.json().catch(() => undefined)) as { message?: string } | undefined;
  if (res.status === 401) throw new Failure(`the API refused the credentials (${body?.message ?? 'unauthorized'}); set API_USER and API_PASSWORD`);
  if (!res.ok) throw new Failure(`the API answered ${res.status}: ${body?.message ?? res.statusText}`);
  return body as unknown as PnlReport;
}

function draw(report: PnlReport, args: ReportArgs, redraw: boolean): void {
  const tty = process.stdout.isTTY;
  if (redraw && tty && args.format === 'table') process.stdout.write('\x1b[2J\x1b[H');
  else if (redraw && args.format !== 'json') process.stdout.write('\n');
  const text = render(report, args.format, { color: useColor(process.stdout) });
  // JSON while watching: one report per line, so another program can read the stream.
  process.stdout.write(args.watch && args.format === 'json' ? `${JSON.stringify(report)}\n` : text);
}

function watch(args: ReportArgs, initial: PnlReport): Promise<never> {
  let report = initial;
  const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(new URL(apiUrl).origin, {
    extraHeaders: authorization ? { Authorization: authorization } : {},
    transports: ['websocket'],
  });
  return new Promise((_resolve, reject) => {
    socket.on('connect', () => {
      if (socket.recovered) return; // missed updates are replayed
      socket.emit('subscribe', { trader_id: args.trader, delivery_day: args.day }, (ack) => {
        if (!ack.ok) return reject(new Failure(`live updates refused: ${ack.error}`));
        // A fresh snapshot after every unrecovered (re)connect; redrawn only if it differs.
        const changed = JSON.stringify(ack.report) !== JSON.stringify(report);
        report = ack.report;
        if (changed) draw(report, args, true);
      });
    });
    socket.on('connect_error', (error) => {
      if (!socket.active) reject(new Failure(`live updates refused: ${error.message}`));
    });
    socket.on('pnl', (update) => {
      report = applyUpdate(report, update);
      draw(report, args, true);
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
    const report = await fetchReport(args);
    draw(report, args, false);
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
