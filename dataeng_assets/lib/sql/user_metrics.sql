-- Grain: one row per user per day (the seed's transform): events and items in the cart lists.
-- Events without a user_id form one NULL-user row, which the quality gate refuses.
SELECT user_id,
       date,
       count(*)::BIGINT AS event_count,
       sum(item_count)::BIGINT AS total_items
FROM raw_events
GROUP BY user_id, date
