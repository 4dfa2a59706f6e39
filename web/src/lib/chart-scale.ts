// The EUR axis of a day without trades: chart.js would draw 0 to 1; a ±100 EUR scale around 0 reads as "nothing here".
export function fitEmptyDay(y: { min?: number; max?: number }, noTrades: boolean): void {
  y.min = noTrades ? -100 : undefined;
  y.max = noTrades ? 100 : undefined;
}
