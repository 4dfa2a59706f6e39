-- The trades that are not a plain UTC hour (quarter hours and other periods of quarter hours),
-- for the PnL report's products per hour: a desk that trades mostly hours has few or none, so
-- finding the hours that need their products listed costs an index probe, not a scan of the
-- trader's day. The predicate is repeated word for word in server/reports/pnl.ts so that the
-- planner can use the index.
CREATE INDEX trades_trader_products ON trades (trader_id, delivery_start)
  WHERE delivery_end - delivery_start <> INTERVAL '1 hour' OR time_bucket(INTERVAL '1 hour', delivery_start) <> delivery_start;
