// The order ticket's pure rules: EUR/MWh typed by a trader to exact eurocent, the API's error
// message split by field, and the product of a clicked report row (DST days included).
import { describe, expect, it } from 'vitest';
import { centsToPrice, ClientOrderIds, errorsByField, priceToCents, productOfRow } from '../web/src/lib/order-form';

describe('priceToCents', () => {
  it('does turn EUR/MWh text into exact eurocent, negatives and commas too', () => {
    expect(priceToCents('50')).toBe(5000);
    expect(priceToCents('50.5')).toBe(5050);
    expect(priceToCents('0.29')).toBe(29); // 0.29 * 100 is 28.999999999999996 in floats
    expect(priceToCents('-12,25')).toBe(-1225);
    expect(priceToCents(' 9999.99 ')).toBe(999999);
    expect(priceToCents('-0')).toBe(0);
  });
  it('does refuse what is not such a number', () => {
    for (const bad of ['', 'abc', '1.234', '12000', '1e3', '--1', '5.']) expect(priceToCents(bad), bad).toBeNull();
  });
  it('does print eurocent back as EUR/MWh', () => {
    expect(centsToPrice(5050)).toBe('50.50');
    expect(centsToPrice(-5)).toBe('-0.05');
    expect(centsToPrice(0)).toBe('0.00');
  });
});

describe('errorsByField', () => {
  it('does put each part of a 400 at its field', () => {
    const e = errorsByField(400, 'quantity: must be a positive multiple of 0.1 MW (got 0.05); limit_price: must be within -9999.00 to 9999.00 EUR/MWh, i.e. -999900 to 999900 eurocent/MWh (got -999999)');
    expect(e).toEqual({ quantity: 'must be a positive multiple of 0.1 MW (got 0.05)', limit_price: 'must be within -9999.00 to 9999.00 EUR/MWh, i.e. -999900 to 999900 eurocent/MWh (got -999999)' });
  });
  it('does keep a message naming no ticket field for the form, and mark the quantity on a 422', () => {
    expect(errorsByField(422, 'insufficient cash: this order needs 300.00 EUR held, 10.00 EUR is available')).toEqual({ form: 'insufficient cash: this order needs 300.00 EUR held, 10.00 EUR is available', quantity: 'not enough available cash for this quantity' });
    expect(errorsByField(422, 'insufficient quantity: this order needs 5 MW to sell, 0 MW is available').quantity).toBe('not enough sellable MW for this quantity');
    expect(errorsByField(409, 'client_order_id: abc is already the id of order x with other content')).toEqual({ form: 'client_order_id: abc is already the id of order x with other content' });
    expect(errorsByField(0, 'the server cannot be reached; is it running?')).toEqual({ form: 'the server cannot be reached; is it running?' });
  });
});

describe('productOfRow', () => {
  it('does name the plain hour, a quarter hour, and the second autumn 02:00 hour', () => {
    expect(productOfRow('2026-12-03', '08-09', false)).toEqual({ delivery_day: '2026-12-03', delivery_hour: 8, label: '08-09' });
    expect(productOfRow('2026-12-03', '08-09', false, '08-09')).toEqual({ delivery_day: '2026-12-03', delivery_hour: 8, label: '08-09' });
    expect(productOfRow('2026-12-03', '08-09', false, '08:15-08:30')).toEqual({ delivery_day: '2026-12-03', delivery_hour: 8, delivery_period: '08:15-08:30', label: '08:15-08:30' });
    expect(productOfRow('2026-10-25', '02-03 (+02:00)', false)).toEqual({ delivery_day: '2026-10-25', delivery_hour: 2, label: '02-03' });
    expect(productOfRow('2026-10-25', '02-03 (+01:00)', true)).toEqual({ delivery_day: '2026-10-25', delivery_hour: 2, delivery_period: '02-03B', label: '02-03B' });
    expect(productOfRow('2026-10-25', '02-03 (+01:00)', true, '02:15-02:30B')).toMatchObject({ delivery_period: '02:15-02:30B' });
    expect(productOfRow('2026-10-25', '02-03 (+01:00)', true, '02:15-02:30')).toMatchObject({ delivery_period: '02:15-02:30B' });
    expect(productOfRow('2026-12-03', '23-00', false)).toEqual({ delivery_day: '2026-12-03', delivery_hour: 23, label: '23-00' });
  });
});

describe('ClientOrderIds', () => {
  it('does send the same client_order_id again only for a retry of the same order whose answer was lost', () => {
    const ids = new ClientOrderIds();
    const order = { side: 'buy', quantity: 5, limit_price: 5000 };
    const first = ids.for(order);
    expect(first).toMatch(/^web-[0-9a-f]{24}$/);
    ids.settled(0); // the server could not be reached: the order may or may not exist
    expect(ids.for({ ...order })).toBe(first);
    ids.settled(503);
    expect(ids.for(order)).toBe(first);
    ids.settled(201); // placed: the next order is another one, even with the same content
    const second = ids.for(order);
    expect(second).not.toBe(first);
    ids.settled(422); // refused: nothing was placed, a retry is a new order
    expect(ids.for(order)).not.toBe(second);
    expect(ids.for({ ...order, quantity: 6 })).not.toBe(ids.for(order));
  });
});
