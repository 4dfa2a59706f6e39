-- The read-only analyst role (psql, notebooks, Grafana's desk dashboard) reads deals, recalls, the
-- hourly PnL aggregate and reference prices, as it reads meter data (0042).
GRANT SELECT ON trades, deal_recalls, pnl_hourly, reference_prices, reference_prices_latest TO analyst_ro;
GRANT EXECUTE ON FUNCTION pnl_hourly_between(text, timestamptz, timestamptz) TO analyst_ro;
