import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseBound, parseStamp, wallTimeToInstant } from '../server/meters/meter-time';
import { checkReading } from '../server/meters/readings-store';
import { checkResult, segmentsOf } from '../server/meters/runs-store';
import { readUpload } from '../server/meters/upload';

const iso = (ms: number) => new Date(ms).toISOString();
const d = (s: string) => new Date(s);

describe('meter time', () => {
  it('reads timestamps with their own offset, in both the provider and ISO-8601 forms', () => {
    const stamp = (s: string) => { const r = parseStamp(s); return 'ms' in r ? iso(r.ms) : r.error; };
    expect(stamp('2018-06-14 00:30:00+12')).toBe('2018-06-13T12:30:00.000Z');
    expect(stamp('2018-12-14 00:30:00+13')).toBe('2018-12-13T11:30:00.000Z');
    expect(stamp('2018-06-14T00:30:00+12:00')).toBe('2018-06-13T12:30:00.000Z');
    expect(stamp('2018-06-27 16:39:36.057601+12')).toBe('2018-06-27T04:39:36.058Z');
    expect(stamp('2018-06-13T12:30:00Z')).toBe('2018-06-13T12:30:00.000Z');
    expect(stamp('2018-06-14 00:30:00')).toContain('no UTC offset');
    expect(stamp('2018-02-29 00:30:00+12')).toContain('not a real date');
    expect(stamp('2018-06-14 24:00:00+12')).toContain('not a real date');
    expect(stamp('14/06/2018 00:30')).toContain('is not a timestamp');
  });

  it('turns local NZ wall time into instants across DST, refusing skipped and repeated times without offset', () => {
    const wall = (day: string, time: string) => { const r = wallTimeToInstant(day, time, 'Pacific/Auckland'); return 'ms' in r ? iso(r.ms) : r.error; };
    expect(wall('2018-06-13', '00:00:00')).toBe('2018-06-12T12:00:00.000Z');
    expect(wall('2018-12-13', '00:00:00')).toBe('2018-12-12T11:00:00.000Z');
    expect(wall('2018-09-30', '02:30:00')).toContain('does not exist');          // spring forward 02:00 -> 03:00
    expect(wall('2019-04-07', '02:30:00')).toContain('occurs twice');            // fall back 03:00 -> 02:00
    expect(wall('2019-04-07', '02:30:00+13')).toBe('2019-04-06T13:30:00.000Z');
    expect(wall('2019-04-07', '02:30:00+12')).toBe('2019-04-06T14:30:00.000Z');
    expect(wall('2019-02-30', '00:00:00')).toMatch(/^read_date:/);
    expect(wall('2019-02-01', '25:00:00')).toMatch(/^read_time:/);
  });

  it('reads period bounds as instants or as local midnight of a date', () => {
    expect(parseBound('2018-06-14', 'Pacific/Auckland')).toEqual(d('2018-06-13T12:00:00Z'));
    expect(parseBound('2018-06-14T00:00:00Z', 'Pacific/Auckland')).toEqual(d('2018-06-14T00:00:00Z'));
    expect(typeof parseBound('2018-06-31', 'Pacific/Auckland')).toBe('string');
    expect(typeof parseBound('soon', 'Pacific/Auckland')).toBe('string');
  });
});

describe('current run segments', () => {
  const run = (id: number, from: string, to: string) => ({ id, input_from: d(from), input_to: d(to) });

  it('gives every instant to the latest published run that covers it', () => {
    // Precedence order: latest publication first.
    const runs = [run(3, '2020-01-02', '2020-01-03'), run(2, '2020-01-01', '2020-01-05'), run(1, '2019-12-30', '2020-01-02')];
    expect(segmentsOf(runs).map((s) => [s.run_id, s.start.toISOString().slice(0, 10), s.end.toISOString().slice(0, 10)])).toEqual([
      [1, '2019-12-30', '2020-01-01'], [2, '2020-01-01', '2020-01-02'], [3, '2020-01-02', '2020-01-03'], [2, '2020-01-03', '2020-01-05'],
    ]);
  });

  it('clips to the asked period and leaves gaps no run covers empty', () => {
    const runs = [run(1, '2020-01-01', '2020-01-02'), run(2, '2020-01-04', '2020-01-06')];
    expect(segmentsOf(runs, d('2020-01-01T12:00:00Z'), d('2020-01-05')).map((s) => [s.run_id, s.start.toISOString(), s.end.toISOString()])).toEqual([
      [1, '2020-01-01T12:00:00.000Z', '2020-01-02T00:00:00.000Z'], [2, '2020-01-04T00:00:00.000Z', '2020-01-05T00:00:00.000Z'],
    ]);
    expect(segmentsOf([])).toEqual([]);
  });
});

describe('upload rows', () => {
  async function records(text: string, format: 'csv' | 'ndjson', required: string[], optional: string[] = []) {
    const out = [];
    // Small chunks: lines split across chunk boundaries must come out whole.
    const chunks = text.match(/[\s\S]{1,7}/g) ?? [];
    for await (const batch of readUpload(Readable.from(chunks.map((c) => Buffer.from(c))), format, required, optional)) out.push(...batch);
    return out;
  }

  it('reads the algorithm output format with quotes, spaces after commas and typographic quotes', async () => {
    const text = 'icp_id, matched_amount, read_date, read_time, publish_datetime,buyer_seller\r\n101, "0.0000", "2018-06-13", "00:00:00", "2018-06-27 16:39:36.057601+12", “buyer”\r\n';
    const [rec] = await records(text, 'csv', ['icp_id', 'matched_amount', 'read_date', 'read_time', 'buyer_seller'], ['publish_datetime']);
    expect(rec).toEqual({ line: 2, values: { icp_id: '101', matched_amount: '0.0000', read_date: '2018-06-13', read_time: '00:00:00', publish_datetime: '2018-06-27 16:39:36.057601+12', buyer_seller: 'buyer' } });
    const row = checkResult(rec!.values!, { input_from: d('2018-06-12T12:00:00Z'), input_to: d('2018-06-27T12:00:00Z') }, 'Pacific/Auckland');
    expect(row).toEqual({ icp_id: '101', ms: Date.parse('2018-06-12T12:00:00Z'), role: 'buyer', amount: '0.0000' });
  });

  it('reports an unbalanced quote on its own line and keeps reading', async () => {
    const out = await records('icp_id,read_timestamp,interval_read,energy_flow_direction\n33,"2018-06-14 00:30:00+12,1,X\n33,2018-06-14 01:00:00+12,1,X\n', 'csv', ['icp_id']);
    expect(out[0]!.line).toBe(2);
    expect(out[0]!.error).toContain('not valid CSV');
    expect(out[1]).toMatchObject({ line: 3, values: { icp_id: '33' } });
  });

  it('checks each reading field and names the one that is wrong', () => {
    const ok = { read_timestamp: '2018-06-14 00:30:00+12', interval_read: '1.343', energy_flow_direction: 'X', icp_id: '33' };
    expect(checkReading(ok)).toMatchObject({ icp_id: '33', kwh: '1.343', direction: 'X', ms: Date.parse('2018-06-13T12:30:00Z') });
    expect(checkReading({ ...ok, interval_read: '1e3' })).toMatch(/^interval_read:/);
    expect(checkReading({ ...ok, interval_read: 1.5 })).toMatchObject({ kwh: '1.5' });
    expect(checkReading({ ...ok, icp_id: 'a b' })).toMatch(/^icp_id:/);
    expect(checkReading({ ...ok, energy_flow_direction: 'x' })).toMatch(/^energy_flow_direction:/);
    expect(checkReading({ ...ok, read_timestamp: undefined })).toBe('read_timestamp: is required');
  });
});

describe('meter configuration', () => {
  it('refuses a bad METER_TZ, chunk interval or compression schedule with the variable named', async () => {
    const { loadConfig } = await import('../server/config');
    expect(() => loadConfig({ METER_TZ: 'Mars/Olympus' })).toThrow(/METER_TZ: "Mars\/Olympus" is not an IANA time zone/);
    expect(() => loadConfig({ METER_CHUNK_DAYS: 'weekly' })).toThrow(/METER_CHUNK_DAYS: must be a number of days/);
    expect(() => loadConfig({ METER_COMPRESS_EVERY_MINUTES: '0' })).toThrow(/METER_COMPRESS_EVERY_MINUTES/);
    const config = loadConfig({ METER_CHUNK_DAYS: '3', METER_COMPRESS_EVERY_MINUTES: '60' });
    expect([config.METER_TZ, config.METER_CHUNK_DAYS, config.METER_COMPRESS_AFTER_DAYS, config.METER_COMPRESS_EVERY_MINUTES]).toEqual(['Pacific/Auckland', 3, 30, 60]);
  });
});
