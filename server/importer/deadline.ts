// The missing-file alert: by IMPORT_DEADLINE local time the file of the previous trading day
// must have arrived; until it does, the importer reports it (log and readiness).
import { toLocal } from '../time/market-time';

export function previousDay(day: string, n = 1): string {
  const [y, m, d] = day.split('-').map(Number) as [number, number, number];
  return new Date(Date.UTC(y, m - 1, d - n)).toISOString().slice(0, 10);
}

export function fileNameFor(tradingDay: string): string {
  return `epex_trades_${tradingDay.replaceAll('-', '')}.csv`;
}

/**
 * The trading day whose file is overdue at `now`: from the deadline on, yesterday's; before it,
 * the day before (whose deadline passed a day ago). The caller checks whether it arrived.
 */
export function expectedTradingDay(now: Date, tz: string, deadline: string): string {
  const local = toLocal(now, tz);
  const [h, m] = deadline.split(':').map(Number) as [number, number];
  const passed = local.hour * 60 + local.minute >= h * 60 + m;
  return previousDay(local.day, passed ? 1 : 2);
}

export function missingFileMessage(tradingDay: string, deadline: string, tz: string): string {
  return `no file ${fileNameFor(tradingDay)} for trading day ${tradingDay} has arrived, due by ${deadline} ${tz}`;
}
