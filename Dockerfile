# syntax=docker/dockerfile:1
# One image for every powerdesk process: the server (default), the exchange gateway, the nightly
# file importer and the simulators; docker-compose.yml picks the command per service.
# There is no Docker engine on the development and CI machines: this file is kept correct by
# review (see deploy/README.md); the nginx config, failover and monitoring files are tested there.
ARG NODE_IMAGE=node:22-bookworm-slim

# 1. Every dependency (vite and svelte build the dashboard).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

# 2. The dashboard: web/ -> web/build.
FROM deps AS web
COPY tsconfig.json ./
COPY web ./web
COPY server ./server
COPY scripts/build-web.ts ./scripts/
RUN node --import tsx scripts/build-web.ts

# 3. Only what runs: production dependencies (tsx runs the TypeScript), code, migrations, the built dashboard.
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
# tini as PID 1: forwards SIGTERM/SIGINT to node and reaps children, so `docker stop` drains.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production PORT=8080 HOST=0.0.0.0 DATA_DIR=/app/data
COPY --from=prod-deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY server ./server
COPY scripts ./scripts
COPY sql ./sql
COPY --from=web /app/web/build ./web/build
# The image's `node` user (uid 1000); the embedded database's DATA_DIR and the importer's inbox
# are volumes it owns.
RUN mkdir -p /app/data /app/inbox && chown node:node /app/data /app/inbox
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
# node directly (not npm start): the dashboard is already built, and signals reach node itself.
CMD ["node", "--import", "tsx", "server/main.ts"]
