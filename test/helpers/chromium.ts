// What the browser tests share: Debian's Chromium (or CHROMIUM_PATH) with the flags a shared,
// offline machine needs, where screenshots go, and a loud line plus a failing test under CI
// when Chromium is missing (the browser suite must not skip there).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { root } from '../../scripts/build-web';

export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const haveChromium = existsSync(chromiumPath);
export const outputDir = path.join(root, 'test-output');
export const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'];

/** Says so when Chromium is missing, and fails under CI. */
export function requireChromium(suite: string): void {
  if (!haveChromium) process.stderr.write(`\n${'!'.repeat(100)}\n!! ${suite}: Chromium not found at ${chromiumPath}: these browser tests are ${process.env.CI ? 'FAILING (CI is set)' : 'SKIPPED'}.\n${'!'.repeat(100)}\n\n`);
  describe(`${suite}: Chromium itself`, () => {
    it.runIf(process.env.CI)('does find Chromium when CI is set', () => {
      expect(haveChromium, `Chromium missing at ${chromiumPath}`).toBe(true);
    });
  });
}
