-- Data quality: ICP-days with fewer consumption readings than the local day has half hours
-- (48, or 46/50 on the NZ DST change days).
WITH days AS (
  SELECT ld::timestamp AT TIME ZONE 'Pacific/Auckland' AS day,
         (extract(epoch FROM ((ld + 1)::timestamp AT TIME ZONE 'Pacific/Auckland') - (ld::timestamp AT TIME ZONE 'Pacific/Auckland')) / 1800)::int AS half_hours
  FROM generate_series(0, 13) AS i, LATERAL (SELECT DATE '2018-06-13' + i AS ld) AS x
)
SELECT r.icp_id, (r.day AT TIME ZONE 'Pacific/Auckland')::date AS local_day, r.readings, d.half_hours
FROM meter_readings_daily r JOIN days d ON d.day = r.day
WHERE r.direction = 'X' AND r.readings < d.half_hours
ORDER BY r.icp_id, r.day
LIMIT 100;
