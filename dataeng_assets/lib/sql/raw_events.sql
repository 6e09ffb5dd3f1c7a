-- Grain: one row per event (unique event_id per day), typed; date is the drop's day.
SELECT date, event_id, user_id, session_id, event_type, event_timestamp, amount, properties,
       item_count
FROM parsed
WHERE reason IS NULL
  AND (date, event_id) NOT IN (SELECT (date, event_id) FROM duplicates)
UNION ALL
SELECT date, event_id, user_id, session_id, event_type, event_timestamp, amount, properties,
       item_count
FROM duplicates
WHERE rank = 1
