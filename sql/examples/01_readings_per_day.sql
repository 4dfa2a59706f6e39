-- Energy per ICP and local NZ day, consumption (X) and injection (I) side by side, from the
-- daily continuous aggregate. psql: \set icp '''1000042''' then \i sql/examples/01_readings_per_day.sql
SELECT (day AT TIME ZONE 'Pacific/Auckland')::date            AS local_day,
       sum(kwh) FILTER (WHERE direction = 'X')                 AS consumed_kwh,
       sum(kwh) FILTER (WHERE direction = 'I')                 AS injected_kwh,
       sum(readings)                                           AS readings   -- 48 (46/50 on DST days) per direction
FROM meter_readings_daily
WHERE icp_id = :icp
  AND day >= '2018-06-13 00:00+12' AND day < '2018-06-27 00:00+12'
GROUP BY day
ORDER BY day;
