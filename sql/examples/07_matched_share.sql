-- Matched share: per ICP and day, how much of the consumption the current published run
-- matched to a seller (buyer role), joining readings and output aggregates.
WITH cur AS (
  SELECT icp_id, time_bucket(INTERVAL '1 day', interval_start, 'Pacific/Auckland') AS day, sum(matched_amount) AS matched
  FROM match_results_current
  WHERE role = 'buyer' AND interval_start >= '2018-06-13 00:00+12' AND interval_start < '2018-06-14 00:00+12'
  GROUP BY 1, 2
)
SELECT c.icp_id, (c.day AT TIME ZONE 'Pacific/Auckland')::date AS local_day, r.kwh AS consumed_kwh, c.matched,
       round(100 * c.matched / nullif(r.kwh, 0), 1) AS matched_pct
FROM cur c JOIN meter_readings_daily r ON r.icp_id = c.icp_id AND r.day = c.day AND r.direction = 'X'
ORDER BY matched_pct DESC NULLS LAST
LIMIT 50;
