// Generates realistic half-hourly meter readings in the provider's CSV format:
//   npm run gen-readings -- --icps 1000 --days 14 --out readings.csv [--start 2018-06-13] [--solar 0.15] [--seed 1]
// 48 readings per ICP and local NZ day, read_timestamp at the end of each half hour with its
// +12/+13 offset, consumption (X) with a morning and an evening peak, and for a share of ICPs
// (--solar) injection (I) following the sun. Rows are written in time order, as a metering
// provider's daily files would be concatenated.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { hoursOfDay, toLocal } from '../server/time/market-time';

const { values } = parseArgs({
  options: {
    icps: { type: 'string', default: '1000' },
    days: { type: 'string', default: '14' },
    out: { type: 'string' },
    start: { type: 'string', default: '2018-06-13' },
    solar: { type: 'string', default: '0.15' },
    seed: { type: 'string', default: '1' },
    tz: { type: 'string', default: 'Pacific/Auckland' },
    'icp-offset': { type: 'string', default: '0' },
  },
});

const icps = Number(values.icps);
const days = Number(values.days);
const solar = Number(values.solar);
const icpOffset = Number(values['icp-offset']);
if (!values.out || !Number.isInteger(icps) || icps < 1 || !Number.isInteger(days) || days < 1 || !(solar >= 0 && solar <= 1)) {
  process.stderr.write('usage: npm run gen-readings -- --icps N --days D --out FILE [--start YYYY-MM-DD] [--solar 0..1] [--seed N]\n');
  process.exit(2);
}

let state = Number(values.seed) >>> 0 || 1;
/** mulberry32: a fast, seeded generator, so that the same arguments give the same file. */
function random(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

// Per ICP: a base load (kWh per half hour), a peak factor, and whether it has solar panels.
const base = Float64Array.from({ length: icps }, () => 0.15 + random() * 0.5);
const peak = Float64Array.from({ length: icps }, () => 0.5 + random() * 2);
const panels = Float64Array.from({ length: icps }, () => (random() < solar ? 0.5 + random() * 1.5 : 0));
const ids = Array.from({ length: icps }, (_, i) => String(1_000_000 + icpOffset + i));

function consumptionShape(hour: number): number {
  const morning = Math.exp(-((hour - 7.5) ** 2) / 2);
  const evening = Math.exp(-((hour - 18.5) ** 2) / 3);
  return 0.6 + morning * 0.8 + evening * 1.2;
}

function sunShape(hour: number, dayOfYear: number): number {
  const daylight = 10 + 4 * Math.cos(((dayOfYear - 355) / 365) * 2 * Math.PI); // NZ: long days in December
  const x = (hour - 12.5) / (daylight / 2);
  return Math.abs(x) >= 1 ? 0 : Math.cos((x * Math.PI) / 2);
}

const out = fs.createWriteStream(values.out);
const write = (text: string) => (out.write(text) ? Promise.resolve() : new Promise<void>((r) => out.once('drain', () => r())));
let rows = 0;
const started = performance.now();
await write('read_timestamp,interval_read,energy_flow_direction,icp_id\n');
const startDay = new Date(`${values.start}T00:00:00Z`);
for (let d = 0; d < days; d++) {
  const day = new Date(startDay.getTime() + d * 86_400_000).toISOString().slice(0, 10);
  const dayStart = hoursOfDay(day, values.tz)[0]!.start.getTime();
  const dayOfYear = Math.floor((Date.parse(day) - Date.UTC(Number(day.slice(0, 4)), 0, 1)) / 86_400_000);
  const slots = hoursOfDay(day, values.tz).length * 2; // 46/48/50 half hours on DST days
  for (let s = 1; s <= slots; s++) {
    const end = new Date(dayStart + s * 1_800_000);
    const local = toLocal(end, values.tz);
    const stamp = `${local.day} ${String(local.hour).padStart(2, '0')}:${String(local.minute).padStart(2, '0')}:00${local.offset.replace(':00', '')}`;
    const hour = local.hour + local.minute / 60 - 0.25;
    const shape = consumptionShape(hour);
    const sun = sunShape(hour, dayOfYear);
    let chunk = '';
    for (let i = 0; i < icps; i++) {
      const kwh = base[i]! * shape * (0.7 + random() * 0.6 + (random() < 0.05 ? peak[i]! : 0));
      chunk += `${stamp},${kwh.toFixed(3)},X,${ids[i]}\n`;
      if (panels[i]) chunk += `${stamp},${(panels[i]! * sun * (0.6 + random() * 0.4)).toFixed(3)},I,${ids[i]}\n`;
      rows += panels[i] ? 2 : 1;
      if (chunk.length > 1 << 20) { await write(chunk); chunk = ''; }
    }
    await write(chunk);
  }
  process.stderr.write(`\rgen-readings: day ${d + 1}/${days}, ${rows.toLocaleString('en')} rows`);
}
await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
process.stderr.write(`\ngen-readings: wrote ${rows.toLocaleString('en')} rows to ${values.out} in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
