// Explicit parsing of the types whose default JS mapping loses information.
// numeric -> string (exact decimal), int8 -> number (refused beyond 2^53), date -> 'YYYY-MM-DD',
// timestamptz/timestamp -> Date (UTC). JSON travels the same way on both adapters (serializeJson).

export const oids = { int8: 20, numeric: 1700, date: 1082, timestamp: 1114, timestamptz: 1184, json: 114, jsonb: 3802 } as const;

/**
 * A json/jsonb parameter (or element of a json[]/jsonb[] array): a string is JSON text and is sent
 * as it is (`${JSON.stringify(value)}::jsonb`, the project's form); any other value is encoded
 * once. postgres.js alone would encode a string again, storing "{\"a\":1}" instead of {"a":1}.
 * To store a JSON string value, pass its JSON text: JSON.stringify('text').
 */
export function serializeJson(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export const parseJson = (text: string): unknown => JSON.parse(text);

export function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value ${text} does not fit a JS number exactly; cast it to text in SQL`);
  return n;
}

export const parseNumeric = (text: string): string => text;
export const parseDate = (text: string): string => text;

export function parseTimestamptz(text: string): Date {
  // Postgres text output: "2023-02-06 06:13:45.123+00" (session TimeZone is UTC).
  const iso = text.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) throw new RangeError(`unparseable timestamptz ${text}`);
  return d;
}

export const parseTimestamp = (text: string): Date => parseTimestamptz(`${text}+00`);

export const parsers: Record<number, (text: string) => unknown> = {
  [oids.int8]: parseInt8,
  [oids.numeric]: parseNumeric,
  [oids.date]: parseDate,
  [oids.timestamp]: parseTimestamp,
  [oids.timestamptz]: parseTimestamptz,
  [oids.json]: parseJson,
  [oids.jsonb]: parseJson,
};

export const serializers: Record<number, (value: unknown) => string> = {
  [oids.json]: serializeJson,
  [oids.jsonb]: serializeJson,
};
