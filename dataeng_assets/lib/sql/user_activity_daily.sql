-- Grain: one row per user per day: the seed's daily metrics, merged into
-- analytics.user_daily_metrics for the run's days ($1 .. $2 exclusive). avg_session_duration is
-- the mean over sessions (the seed's event-weighted mean would overweight long sessions).
UPDATE analytics.user_daily_metrics AS d
SET total_sessions = a.total_sessions,
    avg_session_duration = a.avg_session_duration,
    bounce_sessions = a.bounce_sessions,
    bounce_rate = a.bounce_rate,
    event_types = a.event_types,
    total_revenue = a.total_revenue
FROM (
    WITH sessions AS (
        SELECT user_id, date, session_id, max(session_duration) AS session_duration, max(is_bounce) AS is_bounce
        FROM analytics.fact_user_events
        WHERE date >= $1 AND date < $2
        GROUP BY user_id, date, session_id
    ),
    per_session AS (
        SELECT user_id, date,
               count(*) AS total_sessions,
               avg(session_duration) AS avg_session_duration,
               sum(is_bounce) AS bounce_sessions
        FROM sessions
        GROUP BY user_id, date
    ),
    per_event AS (
        SELECT user_id, date,
               string_agg(DISTINCT activity_type, ',' ORDER BY activity_type) AS event_types,
               sum(revenue_amount) AS total_revenue
        FROM analytics.fact_user_events
        WHERE date >= $1 AND date < $2
        GROUP BY user_id, date
    )
    SELECT s.user_id, s.date, s.total_sessions, s.avg_session_duration, s.bounce_sessions,
           CASE WHEN s.total_sessions > 0 THEN cast(s.bounce_sessions AS double precision) / s.total_sessions ELSE 0 END
               AS bounce_rate,
           e.event_types, e.total_revenue
    FROM per_session AS s
    JOIN per_event AS e ON e.user_id = s.user_id AND e.date = s.date
) AS a
WHERE d.user_id = a.user_id AND d.date = a.date
