// The order ticket's rules that need no browser: EUR/MWh typed by the trader to the API's
// eurocent/MWh (exactly, no float rounding), and the API's error message split by field.
// (No kit aliases here: the test suite imports this file directly.)

/** "50", "50.5", "-12.25" EUR/MWh → 5000, 5050, -1225 eurocent/MWh; null when it is not such a number. */
export function priceToCents(text: string): number | null {
  const m = /^\s*(-)?(\d{1,4})(?:[.,](\d{1,2}))?\s*$/.exec(text);
  if (!m) return null;
  const cents = Number(m[2]) * 100 + Number((m[3] ?? '').padEnd(2, '0'));
  return m[1] && cents !== 0 ? -cents : cents;
}

/** 5050 → "50.50" (for the modify form's starting value). */
export function centsToPrice(cents: number): string {
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

/** The ticket's fields, as the API names them. */
export const ticketFields = ['side', 'type', 'time_in_force', 'delivery_day', 'delivery_hour', 'delivery_period', 'quantity', 'limit_price'] as const;
export type TicketField = (typeof ticketFields)[number];

/**
 * The API's message ("quantity: must be …; limit_price: required …") as one message per field of
 * the ticket; what names no field of it (422 "insufficient cash: …", 409, a network failure) under
 * `form`. A 422 about cash or MW is also shown at the quantity, the field that decides it.
 */
export function errorsByField(status: number, message: string): Partial<Record<TicketField | 'form', string>> {
  const out: Partial<Record<TicketField | 'form', string>> = {};
  const parts = message.split(/;\s+(?=[a-z_]+(?:\.[a-z_]+)*:\s)/);
  for (const part of parts) {
    const m = /^([a-z_]+)(?:\.[a-z_.]+)?:\s+([\s\S]*)$/.exec(part);
    const field = m?.[1] as TicketField | undefined;
    if (m && field && (ticketFields as readonly string[]).includes(field)) out[field] = out[field] ? `${out[field]}; ${m[2]}` : m[2];
    else out.form = out.form ? `${out.form}; ${part}` : part;
  }
  if (status === 422 && out.form && !out.quantity) out.quantity = /cash/.test(out.form) ? 'not enough available cash for this quantity' : 'not enough sellable MW for this quantity';
  return out;
}

/** A product the trader picked in the report table: its day, local start hour and period. */
export interface PickedProduct {
  delivery_day: string;
  delivery_hour: number;
  /** "08:15-08:30", "02-03B"; absent for the plain hour. */
  delivery_period?: string;
  /** What the ticket shows: "08-09", "08:15-08:30", "02-03B". */
  label: string;
}

const pad = (n: number) => String(n).padStart(2, '0');

/**
 * The product of a row of the report: an hour row ("08-09"; the second of the two autumn 02:00
 * hours, whose label repeats an earlier one, is "02-03B") or a product row of an hour.
 */
export function productOfRow(day: string, hourLabel: string, secondOfRepeated: boolean, period?: string): PickedProduct {
  const hour = Number(hourLabel.slice(0, 2));
  const plain = `${pad(hour)}-${pad((hour + 1) % 24)}`;
  if (period && period !== plain) {
    const p = secondOfRepeated && !period.endsWith('B') ? `${period}B` : period;
    return { delivery_day: day, delivery_hour: hour, delivery_period: p, label: p };
  }
  if (secondOfRepeated) return { delivery_day: day, delivery_hour: hour, delivery_period: `${plain}B`, label: `${plain}B` };
  return { delivery_day: day, delivery_hour: hour, label: plain };
}

/** A fresh client_order_id ("web-" and 24 hex digits); getRandomValues works on plain http too. */
export function newClientOrderId(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * One client_order_id per order the trader means: a retry of the same content after the answer
 * was lost (no answer, 5xx) sends the same id, so the server answers with the order it already
 * has instead of placing it twice; a refusal or other content gets a new id.
 */
export class ClientOrderIds {
  private last: { content: string; id: string } | null = null;

  for(content: unknown): string {
    const key = JSON.stringify(content);
    if (this.last?.content !== key) this.last = { content: key, id: newClientOrderId() };
    return this.last.id;
  }

  /** After an answer: keep the id only when the outcome is unknown. */
  settled(status: number): void {
    if (status !== 0 && status < 500) this.last = null;
  }
}
