// `npm run dev`: the server (restarting on change) and vite's dev server for the dashboard with hot
// reload, proxying /v1 and /socket.io to the server. Ctrl-C stops both.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { root, webDir } from './build-web';

const port = process.env.PORT ?? '8080';
const children: ChildProcess[] = [];

function run(name: string, args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, args, { cwd, env: { ...process.env, ...env }, stdio: 'inherit' });
  child.on('exit', (code, signal) => {
    if (stopping) return;
    process.stderr.write(`dev: ${name} exited (${signal ?? code}); stopping\n`);
    stop(1);
  });
  children.push(child);
}

let stopping = false;
function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  setTimeout(() => process.exit(code), 500).unref();
}

run('server', [path.join(root, 'node_modules/tsx/dist/cli.mjs'), 'watch', 'server/main.ts'], root, { PORT: port });
run('vite', [path.join(root, 'node_modules/vite/bin/vite.js'), 'dev', '--port', '5173'], webDir, { API_TARGET: `http://localhost:${port}` });
process.stdout.write(`dev: the API on http://localhost:${port}; the dashboard with hot reload at the URL vite prints (5173 unless taken)\n`);
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
