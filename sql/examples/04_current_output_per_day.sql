-- The current algorithm output per local day and role: for each interval, the latest published
-- run covering it (view match_results_current). For one ICP or a short period.
SELECT (time_bucket(INTERVAL '1 day', interval_start, 'Pacific/Auckland') AT TIME ZONE 'Pacific/Auckland')::date AS local_day,
       role,
       sum(matched_amount) AS matched_amount,
       count(*)            AS intervals,
       array_agg(DISTINCT run_id) AS runs
FROM match_results_current
WHERE icp_id = '101'
  AND interval_start >= '2018-06-13 00:00+12' AND interval_start < '2018-06-27 00:00+12'
GROUP BY 1, 2
ORDER BY 1, 2;
