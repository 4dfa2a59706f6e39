// The state of a deal tape, shared by the trader's view and the desk's: the latest deals first,
// the ones that just arrived marked fresh for a moment, recalled ones kept and struck through.
import type { Trade } from './api';

export class TapeState {
  deals = $state<Trade[]>([]);
  fresh = $state(new Set<string>());

  constructor(readonly max = 200) {}

  /** Replaces the tape (a fresh report): latest first. */
  reset(deals: Trade[] = []): void {
    this.deals = deals.slice().sort((a, b) => b.execution_time.localeCompare(a.execution_time)).slice(0, this.max);
    this.fresh = new Set();
  }

  /** A new deal on top, highlighted for 2 s; a deal already on the tape is not added twice. */
  add(trade: Trade): void {
    if (this.deals.some((d) => d.id === trade.id)) return;
    this.deals = [trade, ...this.deals].slice(0, this.max);
    this.fresh = new Set([...this.fresh, trade.id]);
    setTimeout(() => {
      const next = new Set(this.fresh);
      next.delete(trade.id);
      this.fresh = next;
    }, 2000);
  }

  /** Struck through where it is on the tape; a recalled deal not shown yet comes in struck through. */
  recall(trade: Trade): void {
    this.deals = this.deals.some((d) => d.id === trade.id)
      ? this.deals.map((d) => (d.id === trade.id ? { ...d, recall: trade.recall } : d))
      : [trade, ...this.deals].slice(0, this.max);
  }
}
