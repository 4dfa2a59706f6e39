// The provider's request limits (about 50/minute and 1,000/hour) as sliding windows: unlike a
// token bucket that starts full, no window of a minute or an hour can ever exceed its limit.
export class SlidingWindowLimiter {
  private readonly sent: number[] = [];

  constructor(private readonly limits: { windowMs: number; max: number }[]) {}

  /** Takes a slot at `now` (ms) if every window has room; false otherwise. */
  tryTake(now: number): boolean {
    const longest = Math.max(...this.limits.map((l) => l.windowMs));
    while (this.sent.length && this.sent[0]! <= now - longest) this.sent.shift();
    for (const { windowMs, max } of this.limits) {
      let inWindow = 0;
      for (let i = this.sent.length - 1; i >= 0 && this.sent[i]! > now - windowMs; i--) inWindow++;
      if (inWindow >= max) return false;
    }
    this.sent.push(now);
    return true;
  }

  /** Requests counted in the last `windowMs` before `now`. */
  used(now: number, windowMs: number): number {
    return this.sent.filter((t) => t > now - windowMs).length;
  }
}
