-- The desk's average load profile: total consumption per local hour of day over a fortnight,
-- with time_bucket in the meters' time zone (DST-correct local hours).
SELECT extract(hour FROM time_bucket(INTERVAL '1 hour', read_at, 'Pacific/Auckland') AT TIME ZONE 'Pacific/Auckland') AS local_hour,
       round(avg(kwh), 4)  AS avg_kwh_per_half_hour,
       sum(kwh)            AS total_kwh,
       count(DISTINCT icp_id) AS icps
FROM meter_readings
WHERE direction = 'X'
  AND read_at >= '2018-06-13 00:00+12' AND read_at < '2018-06-27 00:00+12'
GROUP BY 1
ORDER BY 1;
