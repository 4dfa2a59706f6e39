import { describe, expect, it } from 'vitest';
import { dayBounds, deliveryHour, formatPeriod, gateClosure, hoursOfDay, isPlainHour, localDay, parsePeriod, productOf } from '../server/time/market-time';

const tz = 'Europe/Berlin';
const iso = (d: Date) => d.toISOString();

describe('local market time in Europe/Berlin', () => {
  it('gives 24 hours on a normal winter day, hour 8 starting 07:00 UTC', () => {
    const hours = hoursOfDay('2023-02-06', tz);
    expect(hours).toHaveLength(24);
    expect(hours.map((h) => h.hour)).toEqual([...Array(24).keys()]);
    expect(iso(deliveryHour('2023-02-06', 8, tz).start)).toBe('2023-02-06T07:00:00.000Z');
    expect(iso(deliveryHour('2023-02-06', 8, tz).end)).toBe('2023-02-06T08:00:00.000Z');
    expect(hours[8]!.label).toBe('08-09');
    expect(hours[23]!.label).toBe('23-00');
  });

  it('uses the summer offset in July', () => {
    expect(iso(deliveryHour('2023-07-01', 0, tz).start)).toBe('2023-06-30T22:00:00.000Z');
  });

  it('gives 23 hours on 2023-03-26 and refuses hour 02, which the clocks skip', () => {
    const hours = hoursOfDay('2023-03-26', tz);
    expect(hours).toHaveLength(23);
    expect(hours.map((h) => h.hour)).not.toContain(2);
    expect(iso(deliveryHour('2023-03-26', 1, tz).start)).toBe('2023-03-26T00:00:00.000Z');
    expect(iso(deliveryHour('2023-03-26', 3, tz).start)).toBe('2023-03-26T01:00:00.000Z');
    expect(() => deliveryHour('2023-03-26', 2, tz)).toThrow(/hour 02 does not exist on 2023-03-26 in Europe\/Berlin/);
    expect(dayBounds('2023-03-26', tz)).toEqual({ start: new Date('2023-03-25T23:00:00Z'), end: new Date('2023-03-26T22:00:00Z') });
  });

  it('gives 25 hours on 2023-10-29, integer hour 2 meaning the first 02:00 and labels by offset', () => {
    const hours = hoursOfDay('2023-10-29', tz);
    expect(hours).toHaveLength(25);
    expect(hours.filter((h) => h.hour === 2).map((h) => [h.label, iso(h.start)])).toEqual([
      ['02-03 (+02:00)', '2023-10-29T00:00:00.000Z'],
      ['02-03 (+01:00)', '2023-10-29T01:00:00.000Z'],
    ]);
    expect(iso(deliveryHour('2023-10-29', 2, tz).start)).toBe('2023-10-29T00:00:00.000Z');
    expect(iso(deliveryHour('2023-10-29', 2, tz, 2).start)).toBe('2023-10-29T01:00:00.000Z');
    expect(iso(deliveryHour('2023-10-29', 3, tz).start)).toBe('2023-10-29T02:00:00.000Z');
    const bounds = dayBounds('2023-10-29', tz);
    expect((bounds.end.getTime() - bounds.start.getTime()) / 3_600_000).toBe(25);
  });

  it('parses exchange periods: hours, quarter hours and the A/B hours of the autumn day', () => {
    expect(parsePeriod('2023-02-06', '08-09', tz)).toEqual({ start: new Date('2023-02-06T07:00:00Z'), end: new Date('2023-02-06T08:00:00Z') });
    expect(parsePeriod('2023-02-06', '08:15-08:30', tz)).toEqual({ start: new Date('2023-02-06T07:15:00Z'), end: new Date('2023-02-06T07:30:00Z') });
    expect(parsePeriod('2023-02-06', '23-00', tz)).toEqual({ start: new Date('2023-02-06T22:00:00Z'), end: new Date('2023-02-06T23:00:00Z') });
    expect(parsePeriod('2023-10-29', '02-03A', tz).start).toEqual(new Date('2023-10-29T00:00:00Z'));
    expect(parsePeriod('2023-10-29', '02-03B', tz).start).toEqual(new Date('2023-10-29T01:00:00Z'));
    expect(parsePeriod('2023-10-29', '02-03', tz).start).toEqual(new Date('2023-10-29T00:00:00Z'));
    expect(() => parsePeriod('2023-02-06', '02-03B', tz)).toThrow(/no repeated 02 hour/);
    expect(() => parsePeriod('2023-03-26', '02-03', tz)).toThrow(/does not exist/);
    expect(() => parsePeriod('2023-02-06', '8-9', tz)).toThrow(/is not HH-HH/);
    expect(() => parsePeriod('2023-02-06', '09-08', tz)).toThrow(/must end after it starts/);
    expect(() => parsePeriod('2023-02-06', '08:10-08:25', tz)).toThrow(/quarter hours/);
  });

  it('refuses dates that are not on the calendar', () => {
    expect(() => hoursOfDay('2023-02-30', tz)).toThrow(/not a calendar date/);
  });

  it('finds the local day of an instant around midnight', () => {
    expect(localDay(new Date('2023-02-05T23:30:00Z'), tz)).toBe('2023-02-06');
    expect(localDay(new Date('2023-02-05T22:30:00Z'), tz)).toBe('2023-02-05');
  });

  it('writes every product back in the exchange notation parsePeriod reads, on ordinary and DST days', () => {
    for (const day of ['2023-02-06', '2023-03-26', '2023-10-29', '2024-10-27']) {
      for (const slot of hoursOfDay(day, tz)) {
        for (let startMinute = 0; startMinute < 60; startMinute += 15) {
          for (let minutes = 15; minutes <= 60; minutes += 15) {
            const start = new Date(slot.start.getTime() + startMinute * 60_000);
            const end = new Date(start.getTime() + minutes * 60_000);
            if (slot.hour === 23 && startMinute + minutes > 60) continue; // would end after midnight
            const product = productOf(day, start, end, tz);
            expect([product.slot.index, product.startMinute, product.minutes]).toEqual([slot.index, startMinute, minutes]);
            const text = formatPeriod(product);
            expect(parsePeriod(day, text, tz), `${day} ${text}`).toEqual({ start, end });
          }
        }
      }
    }
  });

  it('names the plain hour "HH-HH", quarter hours "HH:MM-HH:MM" and the second autumn 02:00 with B', () => {
    const named = (day: string, period: string) => {
      const { start, end } = parsePeriod(day, period, tz);
      const product = productOf(day, start, end, tz);
      return [formatPeriod(product), isPlainHour(product)];
    };
    expect(named('2023-02-06', '08-09')).toEqual(['08-09', true]);
    expect(named('2023-02-06', '08:00-09:00')).toEqual(['08-09', true]);
    expect(named('2023-02-06', '08:15-08:30')).toEqual(['08:15-08:30', false]);
    expect(named('2023-02-06', '08:45-09:00')).toEqual(['08:45-09:00', false]);
    expect(named('2023-02-06', '08:30-09:30')).toEqual(['08:30-09:30', false]);
    expect(named('2023-02-06', '23:45-00:00')).toEqual(['23:45-00:00', false]);
    expect(named('2023-10-29', '02-03A')).toEqual(['02-03', true]);
    expect(named('2023-10-29', '02-03')).toEqual(['02-03', true]);
    expect(named('2023-10-29', '02-03B')).toEqual(['02-03B', false]);
    expect(named('2023-10-29', '02:15-02:30B')).toEqual(['02:15-02:30B', false]);
    expect(named('2023-10-29', '02:15-02:30A')).toEqual(['02:15-02:30', false]);
  });

  it('closes trading of a product the given minutes before its delivery starts', () => {
    expect(gateClosure(new Date('2023-02-06T07:00:00Z'), 5)).toEqual(new Date('2023-02-06T06:55:00Z'));
    expect(gateClosure(new Date('2023-02-06T07:00:00Z'), 0)).toEqual(new Date('2023-02-06T07:00:00Z'));
  });
});
