// docker-compose.yml cannot run here (no Docker engine), so what can be checked without one is:
// it parses as YAML, every service is complete (healthcheck, dependencies on healthy services),
// every file it mounts exists, every secret is required (no default password) and listed in
// deploy/.env.example, and the config files it mounts parse too.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  healthcheck?: { test?: string[]; disable?: boolean };
  depends_on?: Record<string, { condition: string }>;
  profiles?: string[];
}

const text = fs.readFileSync('docker-compose.yml', 'utf8');
const compose = parse(text, { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown>; secrets: Record<string, unknown> };
const dockerfile = fs.readFileSync('Dockerfile', 'utf8');

describe('docker-compose.yml', () => {
  it('runs the whole stack: database, broker, migrations, two servers behind nginx, importer, Prometheus, Grafana', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['app1', 'app2', 'db', 'exchange-sim', 'grafana', 'importer', 'lb', 'market-sim', 'migrate', 'prometheus', 'rabbitmq']);
    for (const name of ['app1', 'app2', 'migrate', 'importer']) expect(compose.services[name]!.build, `${name} is built from the Dockerfile`).toBe('.');
    expect(compose.services.db!.image).toBe('timescale/timescaledb:2.28.3-pg15');
    expect(compose.services.importer!.command).toEqual(['node', '--import', 'tsx', 'scripts/importer.ts']);
    expect(compose.services.migrate!.command).toEqual(['node', '--import', 'tsx', 'scripts/migrate.ts']);
    for (const s of ['app1', 'app2']) expect(compose.services[s]!.depends_on!.migrate!.condition).toBe('service_completed_successfully');
  });

  it('gives every long-running service a healthcheck (the servers: the image HEALTHCHECK on /readyz) and waits for healthy ones', () => {
    expect(dockerfile).toMatch(/HEALTHCHECK[\s\S]*\/readyz/);
    for (const [name, s] of Object.entries(compose.services)) {
      const inherits = s.build === '.' && !s.healthcheck;
      if (!s.profiles && name !== 'migrate') expect(inherits || (s.healthcheck?.test?.length ?? 0) > 0, `${name}: a healthcheck`).toBe(true);
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        expect(compose.services[dep], `${name} depends on ${dep}`).toBeDefined();
        expect(['service_healthy', 'service_completed_successfully'], `${name} -> ${dep}`).toContain(condition);
      }
    }
  });

  it('mounts files that exist, on named volumes for data', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      for (const v of s.volumes ?? []) {
        const source = v.split(':')[0]!;
        if (source.startsWith('./')) expect(fs.existsSync(source), `${name}: ${source} exists`).toBe(true);
        else expect(Object.keys(compose.volumes), `${name}: ${source} is a named volume`).toContain(source);
      }
    }
    expect(Object.keys(compose.secrets)).toEqual(['metrics_token']);
  });

  it('requires every secret from .env (no default password) and lists each one in deploy/.env.example', () => {
    const required = new Set([...text.matchAll(/\$\{([A-Z_]+):\?[^}]*\}/g)].map((m) => m[1]!));
    const defaults = new Map([...text.matchAll(/\$\{([A-Z_]+):-([^}]*)\}/g)].map((m) => [m[1]!, m[2]!]));
    for (const secret of ['DB_PASSWORD', 'GRAFANA_DB_PASSWORD', 'RABBITMQ_PASSWORD', 'ADMIN_PASSWORD', 'METRICS_TOKEN', 'IMPORTER_PASSWORD', 'GRAFANA_ADMIN_PASSWORD']) {
      expect(required.has(secret), `${secret} is required`).toBe(true);
    }
    for (const name of defaults.keys()) expect(name, 'a default for a secret').not.toMatch(/PASSWORD|TOKEN|SECRET/);
    const example = fs.readFileSync('deploy/.env.example', 'utf8');
    for (const name of required) expect(example, `${name} in deploy/.env.example`).toMatch(new RegExp(`^${name}=$`, 'm'));
  });

  it('mounts config files that parse: nginx, Prometheus, Grafana provisioning and dashboard', () => {
    for (const file of ['deploy/prometheus/prometheus.yml', 'deploy/prometheus/rules/powerdesk.yml', 'deploy/grafana/provisioning/datasources/powerdesk.yml', 'deploy/grafana/provisioning/dashboards/powerdesk.yml']) {
      expect(parse(fs.readFileSync(file, 'utf8')), file).toBeTypeOf('object');
    }
    const sources = parse(fs.readFileSync('deploy/grafana/provisioning/datasources/powerdesk.yml', 'utf8')) as { datasources: { uid: string; url: string; user?: string }[] };
    expect(sources.datasources.map((d) => [d.uid, d.url])).toEqual([['prometheus', 'http://prometheus:9090'], ['timescaledb', 'db:5432']]);
    const prometheus = parse(fs.readFileSync('deploy/prometheus/prometheus.yml', 'utf8')) as { scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[] };
    const servers = prometheus.scrape_configs.find((j) => j.job_name === 'powerdesk')!;
    expect(servers.static_configs[0]!.targets).toEqual(['app1:8080', 'app2:8080']); // each server directly, not the balancer
    const nginx = fs.readFileSync('deploy/nginx/powerdesk.conf', 'utf8');
    for (const s of ['app1', 'app2']) expect(nginx).toContain(`server ${s}:8080`);
    expect(path.basename(compose.services.lb!.volumes![0]!.split(':')[1]!)).toBe('default.conf');
  });
});
