import { describe, expect, it } from 'vitest';
import { centsToEur, eurToCents, numberToDecimal, trimDecimal } from '../server/trades/decimal';

describe('exact decimals', () => {
  it('converts eurocent to EUR and back without floating point error', () => {
    expect(centsToEur(2050)).toBe('20.50');
    expect(centsToEur(-5)).toBe('-0.05');
    expect(centsToEur(0)).toBe('0.00');
    expect(eurToCents('20.5')).toBe(2050);
    expect(eurToCents('-0.05')).toBe(-5);
    expect(eurToCents('0.29')).toBe(29); // 0.29 * 100 is 28.999999999999996 in floating point
    expect(() => eurToCents('1.234')).toThrow(/more than 2 decimal places/);
  });

  it('keeps the decimal text of JSON numbers and refuses exponents', () => {
    expect(numberToDecimal(12.3)).toBe('12.3');
    expect(numberToDecimal(1e-7)).toBeUndefined();
    expect(numberToDecimal(Number.NaN)).toBeUndefined();
    expect(trimDecimal('12.300000')).toBe('12.3');
    expect(trimDecimal('5.000')).toBe('5');
    expect(trimDecimal('500')).toBe('500');
  });
});
