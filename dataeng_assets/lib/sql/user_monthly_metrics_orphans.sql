-- Users whose month has no daily rows left (a rerun day lost them) leave the monthly table.
DELETE FROM analytics.user_monthly_metrics AS m
WHERE m.month >= $1 AND m.month < $2
  AND NOT EXISTS (
      SELECT 1 FROM analytics.user_daily_metrics AS d
      WHERE d.user_id = m.user_id
        AND CAST(date_trunc('month', d.date) AS DATE) = m.month
  )
