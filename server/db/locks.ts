// Keys of the advisory locks that keep work of several processes on one database from
// overlapping. One number space per database: every key the project takes is here.

export const locks = {
  /** Held per migration file inside its transaction (also by earlier versions). */
  migrationFile: 7243100,
  /** A whole migration run: creating schema_migrations, deciding what is pending, applying it. */
  migrations: 7243101,
  /** Every refresh of pnl_hourly: TimescaleDB refuses overlapping refreshes instead of waiting. */
  pnlRefresh: 7243102,
  /** Changing a hypertable's chunk interval: concurrent catalog updates fail ("tuple concurrently updated"). */
  chunkInterval: 7243103,
  /** Creating the first admin of an empty users table. */
  firstAdmin: 7243104,
  /**
   * Namespace of the exchange gateways' liveness locks, two-key form (namespace, random key):
   * each running gateway holds one for its whole life (server/feed/status.ts).
   */
  gatewayLiveness: 7243105,
} as const;
