-- Run comparison: per ICP and day, where two runs of the algorithm disagree, largest change
-- first. Set the runs with \set a 1 and \set b 2 in psql.
SELECT coalesce(a.icp_id, b.icp_id)                              AS icp_id,
       (coalesce(a.day, b.day) AT TIME ZONE 'Pacific/Auckland')::date AS local_day,
       coalesce(a.role, b.role)                                  AS role,
       a.matched_amount AS run_a, b.matched_amount AS run_b,
       coalesce(b.matched_amount, 0) - coalesce(a.matched_amount, 0) AS delta
FROM (SELECT * FROM match_results_daily WHERE run_id = :a) a
FULL JOIN (SELECT * FROM match_results_daily WHERE run_id = :b) b
  ON a.icp_id = b.icp_id AND a.day = b.day AND a.role = b.role
WHERE a.matched_amount IS DISTINCT FROM b.matched_amount
ORDER BY abs(coalesce(b.matched_amount, 0) - coalesce(a.matched_amount, 0)) DESC
LIMIT 50;
