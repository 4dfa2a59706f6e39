// The terminal report: argument parsing and the table / csv / json renderings of a PnL report,
// kept apart from scripts/report.ts so they can be tested without a terminal.
import { parseArgs } from 'node:util';
import type { PnlHourRow, PnlProductRow, PnlReport, PnlTotal, PnlUpdate } from '../live/events';
import { formatCount, formatMoney, formatMw } from '../format';
import { parseDay } from '../time/market-time';

export const usage = `usage: npm run report -- --trader ID --day YYYY-MM-DD [--format table|csv|json] [--watch]

  --trader ID        the trader_id whose PnL to show
  --day YYYY-MM-DD   the local delivery day (market time zone of the server)
  --format F         table (default), csv or json
  --watch            keep running and show every live update (Ctrl-C to stop); on a terminal
                     the table is redrawn, otherwise one line per changed hour

environment: API_URL, the server (default http://localhost:8080; http://host:8080/v1 means the
same), API_USER, API_PASSWORD`;

export const formats = ['table', 'csv', 'json'] as const;
export type Format = (typeof formats)[number];

export interface ReportArgs {
  trader: string;
  day: string;
  format: Format;
  watch: boolean;
}

export type ParsedArgs = { ok: true; args: ReportArgs } | { ok: true; help: true } | { ok: false; message: string };

export function parseReportArgs(argv: readonly string[]): ParsedArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { trader: { type: 'string' }, day: { type: 'string' }, format: { type: 'string', default: 'table' }, watch: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
      strict: true, allowPositionals: false,
    }));
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  }
  if (values.help) return { ok: true, help: true };
  if (!values.trader) return { ok: false, message: '--trader is required' };
  if (!values.day) return { ok: false, message: '--day is required' };
  if (!parseDay(values.day)) return { ok: false, message: `--day must be a calendar date YYYY-MM-DD (got ${JSON.stringify(values.day)})` };
  if (!(formats as readonly string[]).includes(values.format!)) return { ok: false, message: `--format must be table, csv or json (got ${JSON.stringify(values.format)})` };
  return { ok: true, args: { trader: values.trader, day: values.day, format: values.format as Format, watch: values.watch! } };
}

/** Signed money as the desk reads it: "+ 450.00", "- 1,120.20", "0.00" (server/format.ts). */
export const signed = formatMoney;

const headers = ['Hour', 'Number of Trades', 'Total BUY [MW]', 'Total Sell [MW]', 'PnL [Eur]'] as const;

const ansi = { bold: '\x1b[1m', green: '\x1b[32m', red: '\x1b[31m', dim: '\x1b[2m', reset: '\x1b[0m' };

function cells(label: string, row: Pick<PnlProductRow, 'trades' | 'buy_mw' | 'sell_mw' | 'pnl_eur'>): string[] {
  return [label, formatCount(row.trades), formatMw(row.buy_mw), formatMw(row.sell_mw), formatMoney(row.pnl_eur)];
}

/** Whether to colour: a terminal, and NO_COLOR (https://no-color.org) not set. */
export function useColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(stream.isTTY) && !env.NO_COLOR;
}

/** The hours, each followed by its products (quarter hours) indented, when it has them; then the total. */
export function renderTable(report: PnlReport, options: { color?: boolean } = {}): string {
  const rows = [
    ...report.hours.flatMap((h) => [{ cells: cells(h.label, h), pnl: h.pnl_eur }, ...(h.products ?? []).map((p) => ({ cells: cells(`  ${p.period}`, p), pnl: p.pnl_eur }))]),
    { cells: cells('Total', report.total), pnl: report.total.pnl_eur },
  ];
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r.cells[i]!.length)));
  const paint = (text: string, code: string) => (options.color ? `${code}${text}${ansi.reset}` : text);
  const line = (values: readonly string[], pnl?: number) => values.map((v, i) => {
    const padded = i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!);
    if (i === 4 && pnl) return paint(padded, pnl > 0 ? ansi.green : ansi.red);
    return padded;
  }).join(' | ');
  const rule = widths.map((w) => '-'.repeat(w)).join('-+-');
  const out = [
    `PnL of ${report.trader_id} on ${report.delivery_day} (${report.timezone})`,
    paint(line(headers), ansi.bold),
    rule,
    ...rows.slice(0, -1).map((r) => line(r.cells, r.pnl)),
    rule,
    paint(line(rows[rows.length - 1]!.cells, rows[rows.length - 1]!.pnl), ansi.bold),
  ];
  return `${out.join('\n')}\n`;
}

/** Plain numbers for spreadsheets: one row per hour (products are in the table and JSON), the last row the total. */
export function renderCsv(report: PnlReport): string {
  const row = (label: string, r: PnlTotal) => [label, r.trades, r.buy_mw, r.sell_mw, r.pnl_eur.toFixed(2)].join(',');
  return `${['hour,number_of_trades,total_buy_mw,total_sell_mw,pnl_eur', ...report.hours.map((h) => row(h.label, h)), row('Total', report.total)].join('\n')}\n`;
}

export function renderJson(report: PnlReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

export function render(report: PnlReport, format: Format, options: { color?: boolean } = {}): string {
  return format === 'csv' ? renderCsv(report) : format === 'json' ? renderJson(report) : renderTable(report, options);
}

/** A live `pnl` update applied to a report: the hour replaced, the total replaced. */
export function applyUpdate(report: PnlReport, update: PnlUpdate): PnlReport {
  if (update.trader_id !== report.trader_id || update.delivery_day !== report.delivery_day) return report;
  const hours: PnlHourRow[] = report.hours.map((h) => (h.delivery_start === update.hour.delivery_start ? update.hour : h));
  return { ...report, hours, total: update.total };
}
