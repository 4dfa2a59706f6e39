// Streamed uploads (CSV or NDJSON) read line by line, so that a body of hundreds of MB is never
// held in memory. Plain CSV lines are split directly (fast); lines with quotes go through
// csv-parse. Every record keeps its 1-based line number for error reports.
import { parse as parseCsvLine } from 'csv-parse/sync';
import { ApiError, badRequest } from '../http/errors';

export type UploadFormat = 'csv' | 'ndjson';

export interface UploadRecord {
  line: number;
  /** Field values by column name (CSV: strings; NDJSON: as sent). */
  values?: Record<string, unknown>;
  /** Why the line could not be read at all. */
  error?: string;
}

export function uploadFormat(contentType: string | undefined): UploadFormat {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'text/csv' || type === 'application/csv') return 'csv';
  if (type === 'application/x-ndjson' || type === 'application/ndjson' || type === 'application/jsonl') return 'ndjson';
  throw badRequest(`content-type: must be text/csv or application/x-ndjson (got ${JSON.stringify(type || 'none')})`);
}

/** The longest line an upload may have: a reading or result row is under 200 bytes. */
export const maxLineChars = 64 * 1024;

/**
 * Lines of a byte stream, decoded as UTF-8, without holding more than one chunk (and one line)
 * at a time. A line longer than maxLineChars is refused with its number as soon as it is seen:
 * linear time and bounded memory whatever the body.
 */
async function* lines(body: AsyncIterable<Uint8Array>): AsyncGenerator<string[]> {
  const decoder = new TextDecoder('utf-8');
  let rest: string[] = [];
  let restLength = 0;
  let lineNo = 0;
  const tooLong = () => new ApiError(413, `line ${lineNo + 1}: longer than ${maxLineChars} characters; a row of this upload is a few hundred at most (is the file split into lines with \\n?)`);
  for await (const chunk of body) {
    const text = decoder.decode(chunk, { stream: true });
    const firstBreak = text.indexOf('\n');
    if (firstBreak < 0) {
      rest.push(text);
      restLength += text.length;
      if (restLength > maxLineChars) throw tooLong();
      continue;
    }
    if (restLength + firstBreak > maxLineChars) throw tooLong();
    const parts = text.split('\n');
    parts[0] = rest.join('') + parts[0];
    const last = parts.pop()!;
    for (const part of parts) {
      if (part.length > maxLineChars) throw tooLong();
      lineNo++;
    }
    rest = [last];
    restLength = last.length;
    if (restLength > maxLineChars) throw tooLong();
    yield parts;
  }
  const last = rest.join('') + decoder.decode();
  if (last.length > maxLineChars) throw tooLong();
  if (last.length) yield [last];
}

const curly = /^[“”‘’](.*)[“”‘’]$/s;

/** Trims, and strips quotes: ASCII ones via csv-parse, typographic ones (“buyer”) here. */
function cleanField(value: string): string {
  // Hot path of bulk loads: plain fields need neither trim nor the quote pattern.
  const trimmed = value.charCodeAt(0) <= 32 || value.charCodeAt(value.length - 1) <= 32 ? value.trim() : value;
  const first = trimmed.charCodeAt(0);
  if (first !== 0x201c && first !== 0x201d && first !== 0x2018 && first !== 0x2019) return trimmed;
  const m = curly.exec(trimmed);
  return m ? m[1]!.trim() : trimmed;
}

function splitCsv(line: string): string[] | string {
  if (!line.includes('"')) return line.split(',').map(cleanField);
  try {
    const [record] = parseCsvLine(line, { trim: true, relax_column_count: true }) as string[][];
    return (record ?? []).map(cleanField);
  } catch (error) {
    return `not valid CSV (${(error as Error).message.replace(/^Invalid [^:]*: /, '')}); quoted fields may not span lines`;
  }
}

/**
 * Records of an upload in batches. CSV needs a header line naming at least the `required`
 * columns (in any order; others are ignored); a missing one is a 400 before anything is stored.
 */
export async function* readUpload(body: AsyncIterable<Uint8Array>, format: UploadFormat, required: readonly string[], optional: readonly string[] = []): AsyncGenerator<UploadRecord[]> {
  let lineNo = 0;
  let header: { name: string; index: number }[] | undefined;
  const wanted = new Set([...required, ...optional]);
  for await (const batch of lines(body)) {
    const out: UploadRecord[] = [];
    for (let raw of batch) {
      lineNo++;
      if (raw.endsWith('\r')) raw = raw.slice(0, -1);
      if (lineNo === 1 && raw.charCodeAt(0) === 0xfeff) raw = raw.slice(1);
      if (!raw.trim()) continue;
      if (format === 'ndjson') {
        try {
          const value = JSON.parse(raw) as unknown;
          if (typeof value !== 'object' || value === null || Array.isArray(value)) out.push({ line: lineNo, error: 'not a JSON object' });
          else out.push({ line: lineNo, values: value as Record<string, unknown> });
        } catch (error) {
          out.push({ line: lineNo, error: `not valid JSON (${(error as Error).message})` });
        }
        continue;
      }
      const fields = splitCsv(raw);
      if (!header) {
        if (typeof fields === 'string') throw badRequest(`line ${lineNo}: header ${fields}`);
        const names = fields.map((f) => f.toLowerCase());
        const missing = required.filter((r) => !names.includes(r));
        if (missing.length) throw badRequest(`line ${lineNo}: the CSV header must name the columns ${required.join(', ')}; missing ${missing.join(', ')} (got ${names.join(',')})`);
        header = names.map((name, index) => ({ name, index })).filter((h) => wanted.has(h.name));
        continue;
      }
      if (typeof fields === 'string') { out.push({ line: lineNo, error: fields }); continue; }
      const values: Record<string, unknown> = {};
      for (const h of header) values[h.name] = fields[h.index];
      out.push({ line: lineNo, values });
    }
    if (out.length) yield out;
  }
  if (format === 'csv' && !header) throw badRequest('body: empty; expected a CSV header line and rows');
}
