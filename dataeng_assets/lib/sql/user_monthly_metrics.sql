-- Grain: one row per user per month, recomputed from the daily table for every month the run
-- touches ($1 inclusive .. $2 exclusive month starts), so reruns and out-of-order days never
-- add twice. The seed's INSERT ... ON CONFLICT DO UPDATE.
INSERT INTO analytics.user_monthly_metrics (user_id, month, total_events, total_items, active_days)
SELECT user_id,
       CAST(date_trunc('month', date) AS DATE) AS month,
       sum(event_count) AS total_events,
       sum(total_items) AS total_items,
       count(DISTINCT date) AS active_days
FROM analytics.user_daily_metrics
WHERE date >= $1 AND date < $2
GROUP BY user_id, CAST(date_trunc('month', date) AS DATE)
ON CONFLICT (user_id, month) DO UPDATE SET
    total_events = EXCLUDED.total_events,
    total_items = EXCLUDED.total_items,
    active_days = EXCLUDED.active_days
