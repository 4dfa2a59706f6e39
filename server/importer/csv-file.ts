// Streaming reader of a nightly trades file: checks the header, turns each CSV row into the
// trade of the REST API and validates it with the API's own rules. Constant memory.
// Columns: the eight of the trades API, and optionally delivery_period for products that are
// not the plain hour (quarter hours, the second 02:00 hour of the 25-hour day).
import { createReadStream } from 'node:fs';
import { parse } from 'csv-parse';
import { checkApiTrade } from '../trades/normalize';

export const expectedColumns = ['id', 'price', 'quantity', 'direction', 'delivery_day', 'delivery_hour', 'trader_id', 'execution_time'] as const;
/** Columns a file may have in addition; an empty field means the column's value is absent. */
export const optionalColumns = ['delivery_period'] as const;
type Column = (typeof expectedColumns)[number] | (typeof optionalColumns)[number];
const knownColumns: readonly string[] = [...expectedColumns, ...optionalColumns];

/** The whole file is refused: its header is missing or wrong, or its CSV is broken beyond a row. */
export class FileRefused extends Error {}

/** The file name the exchange uses, and the trading day it names (never used for delivery dates). */
export const fileNamePattern = /^epex_trades_(\d{4})(\d{2})(\d{2})\.csv$/;

export function tradingDayOf(fileName: string): string | undefined {
  const m = fileNamePattern.exec(fileName);
  return m ? `${m[1]}-${m[2]}-${m[3]}` : undefined;
}

export interface ApiTradeInput {
  id: string;
  price: number;
  quantity: number;
  direction: string;
  delivery_day: string;
  delivery_hour: number;
  delivery_period?: string;
  trader_id: string;
  execution_time: string;
}

export type FileRow =
  | { line: number; raw: string; ok: true; trade: ApiTradeInput }
  | { line: number; raw: string; ok: false; reason: string };

export interface ReadProgress {
  /** Bytes of the file parsed so far. */
  bytes: number;
}

const integerText = /^[+-]?\d+$/;
const decimalText = /^[+-]?(\d+(\.\d*)?|\.\d+)$/;

/**
 * The CSV text of a numeric column as the number the API would receive, refusing anything that
 * is not plainly a number ("12abc", "1e3", "0x10", "") instead of coercing it.
 */
function numberField(column: Column, text: string, integer: boolean): number | string {
  if (text === '') return `${column}: is empty`;
  if (!(integer ? integerText : decimalText).test(text)) return `${column}: must be ${integer ? 'an integer' : 'a decimal number'} (got ${JSON.stringify(text)})`;
  return Number(text);
}

/**
 * Header rule: the eight expected column names and optionally delivery_period, each once, in
 * any order (matched by name, case-sensitive, surrounding spaces ignored). A missing, unknown or
 * repeated column refuses the whole file.
 */
export function checkHeader(fields: string[]): Map<Column, number> {
  const names = fields.map((f) => f.trim());
  const index = new Map<Column, number>();
  const unknown: string[] = [];
  const repeated: string[] = [];
  names.forEach((name, i) => {
    if (!knownColumns.includes(name)) unknown.push(name);
    else if (index.has(name as Column)) repeated.push(name);
    else index.set(name as Column, i);
  });
  const missing = expectedColumns.filter((c) => !index.has(c));
  const problems = [
    missing.length ? `missing column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}` : '',
    unknown.length ? `unknown column${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => JSON.stringify(u)).join(', ')}` : '',
    repeated.length ? `repeated column${repeated.length > 1 ? 's' : ''} ${repeated.join(', ')}` : '',
  ].filter(Boolean);
  if (problems.length) throw new FileRefused(`line 1 (header): ${problems.join('; ')}; expected ${expectedColumns.join(',')} (and optionally ${optionalColumns.join(', ')})`);
  return index;
}

/** One CSV record -> a validated API trade, or the reason it is refused. */
export function toTrade(fields: string[], columns: Map<Column, number>, tz: string): { ok: true; trade: ApiTradeInput } | { ok: false; reason: string } {
  if (fields.length !== columns.size) return { ok: false, reason: `has ${fields.length} field${fields.length === 1 ? '' : 's'}, the header has ${columns.size}` };
  const get = (c: Column) => fields[columns.get(c)!]!;
  const period = columns.has('delivery_period') ? get('delivery_period') : '';
  const price = numberField('price', get('price'), true);
  const quantity = numberField('quantity', get('quantity'), false);
  const hour = numberField('delivery_hour', get('delivery_hour'), true);
  const numeric = [price, quantity, hour].filter((v): v is string => typeof v === 'string');
  if (numeric.length) return { ok: false, reason: numeric.join('; ') };
  const trade: ApiTradeInput = {
    id: get('id'), price: price as number, quantity: quantity as number, direction: get('direction'),
    delivery_day: get('delivery_day'), delivery_hour: hour as number, ...(period === '' ? {} : { delivery_period: period }),
    trader_id: get('trader_id'), execution_time: get('execution_time'),
  };
  const checked = checkApiTrade(trade, tz);
  return checked.ok ? { ok: true, trade } : { ok: false, reason: checked.message };
}

/**
 * The data rows of a file with their physical line numbers (header = line 1; a quoted field
 * spanning lines gives its first line). Empty lines are skipped (they hold no trade).
 * Throws FileRefused before yielding anything when the header is wrong.
 */
export async function* readTradesFile(path: string, tz: string, progress?: ReadProgress): AsyncGenerator<FileRow> {
  const parser = createReadStream(path, { highWaterMark: 256 * 1024 }).pipe(
    parse({ bom: true, raw: true, info: true, relax_column_count: true, skip_empty_lines: false }),
  );
  let columns: Map<Column, number> | undefined;
  let nextLine = 1;
  try {
    for await (const { record, raw, info } of parser as AsyncIterable<{ record: string[]; raw: string; info: { bytes: number } }>) {
      const line = nextLine;
      // Each record ends with one line end; quoted fields may hold more. csv-parse's raw text
      // carries the record's "\n" for LF files but only the "\r" of CRLF files: so the record's
      // own line end is dropped before counting.
      const text = raw.replace(/\r?\n$/, '').replace(/\r$/, '');
      let newlines = 1;
      for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) newlines += 1;
      nextLine += newlines;
      if (progress) progress.bytes = info.bytes;
      if (!columns) {
        if (record.length === 1 && record[0] === '') throw new FileRefused('line 1: empty; the file must start with the header ' + expectedColumns.join(','));
        columns = checkHeader(record);
        continue;
      }
      if (record.length === 1 && record[0]!.trim() === '' && !text.includes('"')) continue;
      const result = toTrade(record, columns, tz);
      yield result.ok ? { line, raw: text, ok: true, trade: result.trade } : { line, raw: text, ok: false, reason: result.reason };
    }
  } catch (error) {
    if (error instanceof FileRefused) throw error;
    // csv-parse stops at a broken quote: everything after it is unreadable, so the file is refused.
    const e = error as Error & { code?: string; lines?: number };
    if (e.code?.startsWith('CSV_')) throw new FileRefused(`line ${e.lines ?? nextLine}: ${e.message}`);
    throw error;
  } finally {
    parser.destroy();
  }
  if (!columns) throw new FileRefused('the file is empty; it must start with the header ' + expectedColumns.join(','));
}
