// The exchange's order messages (session protocol version 2): what we send (`order_new`,
// `order_cancel`, `order_replace`) and what comes back (`execution_report`, numbered with `seq`
// like every message of the exchange). Types and validation for both sides of the link; every
// reason names the field (`order_new.quantity: ...`).
import { z } from 'zod';
import { formatIssues } from '../http/errors';
import { MarketTimeError, parsePeriod } from '../time/market-time';
import { decimalPlaces, numberToDecimal } from '../trades/decimal';
import { dayString, Direction, identifier, maxQuantityMw, utcDateTime } from '../trades/schema';

export const orderKinds = ['order_new', 'order_cancel', 'order_replace'] as const;
export type OrderKind = (typeof orderKinds)[number];

/** The exchange's price limits (EUR/MWh) and the smallest quantity step (MW). */
export const orderPriceLimitEur = 9999;
export const orderLotMw = 0.1;

const decimalsOf = (n: number) => {
  const text = numberToDecimal(n);
  return text === undefined ? Infinity : decimalPlaces(text);
};

const orderQuantity = z
  .number({ error: 'must be a number: the quantity in MW' })
  .refine((q) => q > 0 && decimalsOf(q) <= 1, { error: (i) => `must be a positive multiple of ${orderLotMw} MW (got ${JSON.stringify(i.input)})` })
  .refine((q) => q <= maxQuantityMw, { error: `must be at most ${maxQuantityMw} MW` });

const orderPrice = z
  .number({ error: 'must be a number: the limit price in EUR/MWh' })
  .refine((p) => decimalsOf(p) <= 2, { error: (i) => `must have at most 2 decimal places (EUR/MWh to the cent; got ${JSON.stringify(i.input)})` })
  .refine((p) => Math.abs(p) <= orderPriceLimitEur, { error: (i) => `must be within ±${orderPriceLimitEur} EUR/MWh (got ${JSON.stringify(i.input)})` });

const clientOrderId = identifier('client order id');

export const OrderNew = z.strictObject({
  client_order_id: clientOrderId,
  trader_id: identifier('trader id'),
  side: Direction,
  type: z.enum(['limit', 'market'], { error: (i) => `must be "limit" or "market" (got ${JSON.stringify(i.input)})` }),
  time_in_force: z.enum(['gtc', 'ioc', 'fok'], { error: (i) => `must be "gtc", "ioc" or "fok" (got ${JSON.stringify(i.input)})` }).default('gtc'),
  delivery_day: dayString,
  delivery_hour: z.string({ error: 'must be a period string such as "08-09", "08:15-08:30" or "02-03B"' }),
  quantity: orderQuantity,
  price: orderPrice.optional(),
}).superRefine((o, ctx) => {
  if (o.type === 'limit' && o.price === undefined) ctx.addIssue({ code: 'custom', path: ['price'], message: 'is required for a limit order (EUR/MWh)', input: undefined });
  if (o.type === 'market' && o.price !== undefined) ctx.addIssue({ code: 'custom', path: ['price'], message: 'must not be given for a market order (it fills at the book)', input: o.price });
});
export type OrderNew = z.infer<typeof OrderNew>;

export const OrderCancel = z.strictObject({ client_order_id: clientOrderId });
export type OrderCancel = z.infer<typeof OrderCancel>;

export const OrderReplace = z.strictObject({
  client_order_id: clientOrderId,
  quantity: orderQuantity.optional(),
  price: orderPrice.optional(),
}).refine((r) => r.quantity !== undefined || r.price !== undefined, { error: 'must give quantity or price (or both)' });
export type OrderReplace = z.infer<typeof OrderReplace>;

export const executionStatuses = ['new', 'partially_filled', 'filled', 'canceled', 'expired', 'rejected', 'replaced', 'cancel_rejected', 'replace_rejected'] as const;
export type ExecutionStatus = (typeof executionStatuses)[number];

const reportQuantity = z.number({ error: 'must be a number (MW)' }).min(0, { error: 'must not be negative' });

export const ExecutionReport = z.object({
  /** null only when the frame it answers had no readable client_order_id. */
  client_order_id: clientOrderId.nullable(),
  /** null when the exchange never took the order (unknown, or unreadable). */
  exchange_order_id: identifier('exchange order id').nullable(),
  status: z.enum(executionStatuses, { error: (i) => `must be one of ${executionStatuses.join(', ')} (got ${JSON.stringify(i.input)})` }),
  filled_quantity: reportQuantity,
  leaves_quantity: reportQuantity,
  reason: z.string().optional(),
  transact_time: utcDateTime,
  fill: z.object({
    deal_id: identifier('exchange deal id'),
    price: orderPrice,
    quantity: orderQuantity,
  }).optional(),
});
export type ExecutionReport = z.infer<typeof ExecutionReport>;

/** An order message of a known kind, validated; or the reason, naming the field. */
export type CheckedOrderFrame =
  | { ok: true; kind: 'order_new'; value: OrderNew; delivery: { start: Date; end: Date } }
  | { ok: true; kind: 'order_cancel'; value: OrderCancel }
  | { ok: true; kind: 'order_replace'; value: OrderReplace }
  | { ok: false; kind: OrderKind; reason: string; clientOrderId: string | null };

/** The client_order_id of a body that failed validation, when it is usable at all. */
function readableId(body: unknown): string | null {
  const id = (body as { client_order_id?: unknown } | null)?.client_order_id;
  return clientOrderId.safeParse(id).success ? (id as string) : null;
}

/** Validates the body of one order message; the delivery period is read in the market's time zone `tz`. */
export function checkOrderFrame(kind: OrderKind, body: unknown, tz: string): CheckedOrderFrame {
  const schema = kind === 'order_new' ? OrderNew : kind === 'order_cancel' ? OrderCancel : OrderReplace;
  const parsed = schema.safeParse(body, { reportInput: true });
  if (!parsed.success) return { ok: false, kind, reason: formatIssues(parsed.error.issues, kind), clientOrderId: readableId(body) };
  if (kind !== 'order_new') return { ok: true, kind, value: parsed.data } as CheckedOrderFrame;
  const order = parsed.data as OrderNew;
  try {
    return { ok: true, kind, value: order, delivery: parsePeriod(order.delivery_day, order.delivery_hour, tz) };
  } catch (error) {
    if (error instanceof MarketTimeError) return { ok: false, kind, reason: `order_new.delivery_hour: ${error.message}`, clientOrderId: order.client_order_id };
    throw error;
  }
}

/** Validates the body of an `execution_report` (the receiving side). */
export function checkExecutionReport(body: unknown): { ok: true; value: ExecutionReport } | { ok: false; reason: string } {
  const parsed = ExecutionReport.safeParse(body, { reportInput: true });
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, reason: formatIssues(parsed.error.issues, 'execution_report') };
}
