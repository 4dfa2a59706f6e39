// `npm start`: builds the dashboard when it is missing or stale, then runs the server in this
// very process. npm's script execs node (no shell, no tsx launcher in between), so the SIGTERM a
// supervisor or container runtime sends to `npm start` reaches the server, which stops cleanly.
import { main } from '../server/main';
import { ensureWebBuild } from './build-web';

try {
  await ensureWebBuild({ log: (line) => process.stdout.write(`${line}\n`) });
} catch (error) {
  process.stderr.write(`powerdesk: ${(error as Error).message}\n`);
  process.exit(1);
}
await main();
