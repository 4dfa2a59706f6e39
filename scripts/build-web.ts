// Builds the dashboard (web/ -> web/build) with vite, and knows when a build is stale; used by
// `npm run build`, `npm run demo` and the browser end-to-end test.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));
export const webDir = path.join(root, 'web');
export const buildDir = path.join(webDir, 'build');

function newestMtime(target: string): number {
  if (!existsSync(target)) return 0;
  const stat = statSync(target);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = 0;
  for (const entry of readdirSync(target)) newest = Math.max(newest, newestMtime(path.join(target, entry)));
  return newest;
}

/** Why the build must be redone, or null when web/build is newer than every input. */
export function staleReason(): string | null {
  const index = path.join(buildDir, 'index.html');
  if (!existsSync(index)) return 'web/build is missing';
  const built = statSync(index).mtimeMs;
  const inputs = [path.join(webDir, 'src'), path.join(webDir, 'static'), path.join(webDir, 'svelte.config.js'), path.join(webDir, 'vite.config.ts'), path.join(root, 'server/live/events.ts')];
  const newest = Math.max(...inputs.map(newestMtime));
  return newest > built ? 'web sources changed since the last build' : null;
}

export function buildWeb(options: { quiet?: boolean } = {}): Promise<void> {
  const vite = path.join(root, 'node_modules/vite/bin/vite.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [vite, 'build', '--logLevel', options.quiet ? 'warn' : 'info'], { cwd: webDir, stdio: options.quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`vite build failed (exit ${code})\n${output}`))));
  });
}

/**
 * Builds only when needed; returns whether it built. Processes that start at once (a test run,
 * `npm start` next to `npm run demo`) take turns through a lock directory, so that two vite builds
 * never write web/build together; the second finds the build fresh.
 */
export async function ensureWebBuild(options: { quiet?: boolean; log?: (line: string) => void } = {}): Promise<boolean> {
  if (!staleReason()) return false;
  const lock = path.join(webDir, '.build-lock');
  for (const deadline = Date.now() + 300_000; ;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // A lock older than any build is left over from a process that died while building.
      if (Date.now() - statSync(lock).mtimeMs > 300_000 || Date.now() > deadline) rmSync(lock, { recursive: true, force: true });
      else await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  try {
    const reason = staleReason();
    if (!reason) return false;
    options.log?.(`building the dashboard: ${reason}`);
    await buildWeb(options);
    return true;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const ifStale = process.argv.includes('--if-stale');
  (ifStale ? ensureWebBuild({ log: (line) => process.stdout.write(`${line}\n`) }) : buildWeb()).catch((error: Error) => {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  });
}
