-- Every run with its totals per role, newest first: which version produced what, and which
-- are published (only published runs count as output).
SELECT r.id, r.algorithm, r.version, r.status, r.published_at, r.input_from, r.input_to, r.params,
       d.role, sum(d.matched_amount) AS matched_amount, count(DISTINCT d.icp_id) AS icps
FROM algorithm_runs r
LEFT JOIN match_results_daily d ON d.run_id = r.id
GROUP BY r.id, d.role
ORDER BY r.id DESC, d.role;
