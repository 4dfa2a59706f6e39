// Password hashing is the costly part of a sign-in (scrypt, 128 MiB and a good part of a core
// each). At most `concurrency` run at once; the rest wait in one lane per client address, and
// the lanes take turns. So a burst of sign-ins from one address delays a sign-in from another by
// at most one hash per address that has sign-ins waiting, not by the whole burst; and a lane
// holds at most `maxWaitingPerLane`, past which a sign-in is refused at once (no hash is run).
export class HashQueue {
  private running = 0;
  /** Lanes with waiting work, in the order they are served (a served lane goes to the back). */
  private lanes = new Map<string, (() => void)[]>();

  constructor(readonly concurrency = 2, readonly maxWaitingPerLane = 32) {}

  /** Hashes running or waiting now. */
  get pending(): number {
    let waiting = 0;
    for (const lane of this.lanes.values()) waiting += lane.length;
    return this.running + waiting;
  }

  /** Runs `fn` when its turn comes; undefined (and `fn` not run) when the lane is full. */
  async run<T>(lane: string, fn: () => Promise<T>): Promise<T | undefined> {
    if (this.running >= this.concurrency || this.lanes.size > 0) {
      const waiting = this.lanes.get(lane) ?? [];
      if (waiting.length >= this.maxWaitingPerLane) return undefined;
      await new Promise<void>((resolve) => {
        waiting.push(resolve);
        this.lanes.set(lane, waiting);
      });
    } else this.running += 1;
    try {
      return await fn();
    } finally {
      this.next();
    }
  }

  /** Hands the slot just freed to the lane at the front. */
  private next(): void {
    const [key, waiting] = this.lanes.entries().next().value ?? [];
    if (key === undefined || !waiting) {
      this.running -= 1;
      return;
    }
    const resolve = waiting.shift()!;
    this.lanes.delete(key);
    if (waiting.length) this.lanes.set(key, waiting); // to the back: the other lanes go first
    resolve(); // the slot passes over: running stays the same
  }
}
