-- Grain: one row per quarantined line: the raw line (or, for a duplicate, the record as JSON),
-- where it came from and why it was set aside.
SELECT date, source_file, reason, raw_line
FROM parsed
WHERE reason IS NOT NULL
UNION ALL
SELECT date, source_file, 'duplicate_event_id' AS reason,
       CAST(to_json(struct_pack(event_id, user_id, session_id, event_type, event_timestamp,
                                amount, properties := CAST(properties AS JSON))) AS VARCHAR) AS raw_line
FROM duplicates
WHERE rank > 1
