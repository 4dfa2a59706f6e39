// How the dashboard names delivery products (web/src/lib/periods.ts): the tape's period of a
// deal and the chart tooltip's lines for the products of an hour.
import { describe, expect, it } from 'vitest';
import { dealPeriod, productLines } from '../web/src/lib/periods';

describe('dashboard product names', () => {
  it('does show a deal\'s period when it has one and its hour "HH-HH" when it is the plain hour', () => {
    expect(dealPeriod({ delivery_hour: 8 })).toBe('08-09');
    expect(dealPeriod({ delivery_hour: 23 })).toBe('23-00');
    expect(dealPeriod({ delivery_hour: 8, delivery_period: '08:15-08:30' })).toBe('08:15-08:30');
    expect(dealPeriod({ delivery_hour: 2, delivery_period: '02-03B' })).toBe('02-03B');
  });

  it('does list an hour\'s products for the chart tooltip, and nothing for an hour of plain hours', () => {
    const product = (period: string, trades: number, pnl_eur: number) => ({ period, delivery_start: '', delivery_end: '', trades, buy_mw: 0, sell_mw: 0, pnl_eur });
    expect(productLines({ products: [product('08-09', 2, -40), product('08:15-08:30', 1, 100)] })).toEqual(['08-09: - 40.00 EUR (2 trades)', '08:15-08:30: + 100.00 EUR (1 trade)']);
    expect(productLines({})).toEqual([]);
  });
});
