// The envelope of the exchange's messages (session protocol version 2): `{"seq": n, <kind>: {...}}`
// with exactly one kind; version 1 frames have no seq. Only the envelope is read here; each
// kind's handler validates its own body.

export type Frame =
  | { seq: number | null; kind: string; body: unknown; reason?: undefined }
  | { seq: number | null; kind?: undefined; body?: undefined; reason: string };

// The exchange writes seq first: a frame that is not valid JSON still gives its seq away, so
// that it can be dead-lettered and its seq committed instead of being asked for again and again.
const leadingSeq = /^\s*\{\s*"seq"\s*:\s*(\d{1,15})\s*[,}]/;

const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;

/** Reads the envelope of one frame; never throws. `kinds` are the kinds with a handler (for the message). */
export function parseFrame(raw: string, kinds: readonly string[]): Frame {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (error) {
    const m = leadingSeq.exec(raw);
    return { seq: m ? Number(m[1]) : null, reason: `message: not valid JSON (${(error as Error).message})` };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { seq: null, reason: `message: must be a JSON object such as {"seq": 1, "${kinds[0] ?? 'deal_confirmation'}": {...}}` };
  }
  const record = json as Record<string, unknown>;
  let seq: number | null = null;
  if ('seq' in record) {
    if (!isSeq(record.seq)) return { seq: null, reason: `seq: must be a positive integer (got ${JSON.stringify(record.seq)?.slice(0, 40)})` };
    seq = record.seq;
  }
  const keys = Object.keys(record).filter((k) => k !== 'seq');
  if (keys.length === 1 && kinds.includes(keys[0]!)) return { seq, kind: keys[0]!, body: record[keys[0]!] };
  const known = kinds.filter((k) => keys.includes(k));
  if (known.length > 1) return { seq, reason: `message: has more than one message kind (${known.map((k) => JSON.stringify(k)).join(', ')})` };
  const got = keys.slice(0, 5).map((k) => JSON.stringify(k)).join(', ') || 'none';
  const [first, ...rest] = kinds.map((k) => JSON.stringify(k));
  return { seq, reason: `message: expected the key ${first}${rest.length ? ` (or ${rest.join(', ')})` : ''}; got keys ${got}` };
}

/** The request to replay everything after `afterSeq`, then continue live. */
export function resumeFrame(afterSeq: number): string {
  return JSON.stringify({ resume: { after_seq: afterSeq } });
}
