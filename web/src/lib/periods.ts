// How the dashboard names delivery products: a deal's product on the tape, and the products of
// an hour in the chart's tooltip. (A relative type import: the test suite checks this file too.)
import type { ApiTrade, PnlHourRow } from '../../../server/live/events';
import { formatSigned } from './format';

const pad = (n: number) => String(n).padStart(2, '0');

/** The product of a deal: its period when it is not the plain hour ("08:15-08:30", "02-03B"), else the hour "08-09". */
export function dealPeriod(trade: Pick<ApiTrade, 'delivery_hour' | 'delivery_period'>): string {
  return trade.delivery_period ?? `${pad(trade.delivery_hour)}-${pad((trade.delivery_hour + 1) % 24)}`;
}

/** One line per product of an hour that traded more than its plain hour; none otherwise. */
export function productLines(hour: Pick<PnlHourRow, 'products'>): string[] {
  return (hour.products ?? []).map((p) => `${p.period}: ${formatSigned(p.pnl_eur)} EUR (${p.trades} trade${p.trades === 1 ? '' : 's'})`);
}
