// The report readers of bench:load in a process of their own, as dashboards are in their own
// browsers: N clients each reading its URL over and over until "stop" arrives on stdin, then one
// JSON line on stdout with every request's time in ms. "ready" is printed once all are reading.
// `node --import tsx scripts/bench-load-readers.ts <readers> <authorization> <url>...`
import { createInterface } from 'node:readline';

const [count, authorization, ...urls] = process.argv.slice(2);
const readers = Number(count);
if (!Number.isInteger(readers) || readers < 1 || !authorization || !urls.length) {
  process.stderr.write('usage: bench-load-readers.ts <readers> <authorization> <url>...\n');
  process.exit(2);
}

let stop = false;
const times: number[] = [];
const read = async (url: string) => {
  while (!stop) {
    const t0 = performance.now();
    // A kept-alive connection the server closed while it was busy: once more.
    const res = await fetch(url, { headers: { authorization } }).catch(() => fetch(url, { headers: { authorization } }));
    if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
    times.push(performance.now() - t0);
  }
};

const running = Array.from({ length: readers }, (_, i) => read(urls[i % urls.length]!));
process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === 'stop') break;
}
stop = true;
try {
  await Promise.all(running);
  process.stdout.write(`${JSON.stringify({ times })}\n`);
} catch (error) {
  process.stderr.write(`bench-load-readers: ${(error as Error).message}\n`);
  process.exit(1);
}
