// The COPY path of the bulk loader, against the PostgreSQL server of the CI machine (no
// TimescaleDB there: a plain table with the same columns and key stands in for the hypertable).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadReadingsCopy } from '../server/meters/bulk-load';

const baseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `meters_copy_${process.pid}_${Date.now()}`;
const url = `${baseUrl}${baseUrl.includes('?') ? '&' : '?'}search_path=${schema}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meters-copy-'));
let admin: postgres.Sql;

beforeAll(async () => {
  admin = postgres(baseUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE SCHEMA ${schema}`);
  await admin.unsafe(`CREATE TABLE ${schema}.meter_readings (
    icp_id text NOT NULL, read_at timestamptz NOT NULL, direction text NOT NULL CHECK (direction IN ('X', 'I')),
    kwh numeric NOT NULL, ingested_at timestamptz NOT NULL DEFAULT now(), UNIQUE (icp_id, read_at, direction))`);
});
afterAll(async () => {
  await admin?.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin?.end();
  fs.rmSync(dir, { recursive: true, force: true });
});

function file(name: string, lines: string[]) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, `read_timestamp,interval_read,energy_flow_direction,icp_id\n${lines.join('\n')}\n`);
  return p;
}

describe('load-readings over COPY', () => {
  it('stores new readings, keeps the last of a repeated one, lists bad lines, then replaces corrections', async () => {
    const first = file('a.csv', [
      '2018-06-14 00:30:00+12,1.343,X,33',
      '2018-06-14 01:00:00+12,1.013,X,33',
      '2018-06-14 01:00:00+12,1.100,X,33', // same reading again in the file: the later line wins
      '2018-06-14 01:30:00,1.0,X,33',
      '2018-06-14 01:00:00+12,0.200,I,33',
    ]);
    const a = await loadReadingsCopy(url, null, first, { batchRows: 2 });
    expect(a).toMatchObject({ received: 5, stored: 3, replaced: 0, rejected: 1 });
    expect(a.errors).toEqual([{ line: 5, message: expect.stringContaining('read_timestamp') }]);
    const second = file('b.csv', ['2018-06-14 00:30:00+12,1.343,X,33', '2018-06-13T13:00:00Z,1.5,X,33', '2018-06-14 02:00:00+12,0.9,X,33']);
    const b = await loadReadingsCopy(url, null, second);
    expect(b).toMatchObject({ received: 3, stored: 1, replaced: 1, unchanged: 1, rejected: 0 });
    const rows = await admin.unsafe(`SELECT to_char(read_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS at, direction, kwh::text AS kwh FROM ${schema}.meter_readings ORDER BY read_at, direction`);
    expect(rows.map((r) => `${r.at} ${r.direction} ${r.kwh}`)).toEqual([
      '2018-06-13 12:30 X 1.343', '2018-06-13 13:00 I 0.200', '2018-06-13 13:00 X 1.5', '2018-06-13 14:00 X 0.9',
    ]);
  });
});
