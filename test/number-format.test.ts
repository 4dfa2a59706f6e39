// One number format per medium, the same strings in both: the dashboard's web/src/lib/format.ts
// and the terminal's server/format.ts (money with cents and thousands separators, the sign apart;
// MW with 1 to 3 decimals; counts with separators).
import { describe, expect, it } from 'vitest';
import * as terminal from '../server/format';
import * as web from '../web/src/lib/format';

const money: [number, string][] = [
  [4324.3, '+ 4,324.30'], [-120, '- 120.00'], [0, '0.00'], [0.004, '0.00'], [-0.004, '0.00'], [12.5, '+ 12.50'],
  [1_234_567.891, '+ 1,234,567.89'], [-0.05, '- 0.05'], [450, '+ 450.00'],
];
const mw: [number, string][] = [[0, '0.0'], [10, '10.0'], [23103.7, '23,103.7'], [12.345, '12.345'], [0.1234, '0.123'], [1837, '1,837.0']];
const counts: [number, string][] = [[0, '0'], [7, '7'], [1837, '1,837'], [1_000_000, '1,000,000']];

describe('number formats', () => {
  it('does show money with 2 decimals, thousands separators and the sign apart, the same on the dashboard and the terminal', () => {
    for (const [value, text] of money) {
      expect(terminal.formatMoney(value), String(value)).toBe(text);
      expect(web.formatSigned(value), String(value)).toBe(text);
    }
  });

  it('does show MW and counts one way in both', () => {
    for (const [value, text] of mw) {
      expect(terminal.formatMw(value), String(value)).toBe(text);
      expect(web.formatMw(value), String(value)).toBe(text);
    }
    for (const [value, text] of counts) {
      expect(terminal.formatCount(value)).toBe(text);
      expect(web.formatCount(value)).toBe(text);
    }
    expect([terminal.formatPrice(1020.5), web.formatPrice(1020.5)]).toEqual(['1,020.50', '1,020.50']);
  });

  it('does say what an empty day is: delivered, today or still to come (market time)', () => {
    // 23:30 UTC on 1 March is already 2 March in Berlin.
    const at = new Date('2023-03-01T23:30:00Z');
    expect(web.emptyDayText('2023-03-01', 'Europe/Berlin', at)).toBe('Delivered — no trades on this day');
    expect(web.emptyDayText('2023-03-02', 'Europe/Berlin', at)).toBe('No deals yet today');
    expect(web.emptyDayText('2023-03-03', 'Europe/Berlin', at)).toBe('Not delivered yet — no deals yet for this day');
    expect(terminal.formatClock(at, 'Europe/Berlin')).toBe('00:30:00');
  });
});
