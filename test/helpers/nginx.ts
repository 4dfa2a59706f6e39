// Debian's nginx as a child process in front of test servers, running the project's
// deploy/nginx/powerdesk.conf with only its upstream addresses and listen port replaced.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { until } from './wait';

export const nginxPath = process.env.NGINX_PATH ?? '/usr/sbin/nginx';
export const nginxConfigFile = path.resolve('deploy/nginx/powerdesk.conf');

/** Whether nginx is installed; without it a loud warning, and under CI a failure. */
export function haveNginx(what: string): boolean {
  if (fs.existsSync(nginxPath)) return true;
  const message = `nginx is not installed at ${nginxPath}: ${what} cannot run (apt-get install -y nginx, or set NGINX_PATH)`;
  if (process.env.CI) throw new Error(`${message}; CI is set, so this is a failure`);
  console.warn(`\n!!! SKIPPING: ${message}. !!!\n`);
  return false;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * The committed config with the compose service addresses (app1:8080, app2:8080) replaced by
 * `upstreams` and `listen 80` by the given port; refuses a config whose lines it cannot find, so
 * that a change to the file is noticed here rather than tested by accident.
 */
export function templateConfig(text: string, upstreams: [string, string], port: number): string {
  const replace = (from: RegExp, to: string, times: number) => {
    const found = text.match(new RegExp(from.source, 'g'))?.length ?? 0;
    if (found !== times) throw new Error(`${nginxConfigFile}: expected ${times} line(s) matching ${from}, found ${found}`);
    text = text.replace(new RegExp(from.source, 'g'), to);
  };
  replace(/server app1:8080/, `server ${upstreams[0]}`, 2);
  replace(/server app2:8080/, `server ${upstreams[1]}`, 2);
  replace(/listen 80;/, `listen 127.0.0.1:${port};`, 1);
  return text;
}

export interface Nginx {
  url: string;
  dir: string;
  child: ChildProcess;
  /** Its error log so far. */
  errorLog(): string;
  stop(): Promise<void>;
}

export async function startNginx(upstreams: [string, string]): Promise<Nginx> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pd-nginx-'));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'powerdesk.conf'), templateConfig(fs.readFileSync(nginxConfigFile, 'utf8'), upstreams, port));
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(dir, sub));
  // What the image's /etc/nginx/nginx.conf provides around conf.d/, with every path in `dir`.
  fs.writeFileSync(path.join(dir, 'nginx.conf'), `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 1024; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/powerdesk.conf;
}
`);
  const output: string[] = [];
  const child = spawn(nginxPath, ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const s of [child.stdout!, child.stderr!]) s.on('data', (d: Buffer) => output.push(d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const errorLog = () => { try { return fs.readFileSync(path.join(dir, 'error.log'), 'utf8'); } catch { return ''; } };
  const url = `http://127.0.0.1:${port}`;
  await until(async () => {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${output.join('')}${errorLog()}`);
    return (await fetch(`${url}/lb-healthz`)).ok;
  }, 'nginx to answer /lb-healthz', 20_000);
  return {
    url, dir, child, errorLog,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
