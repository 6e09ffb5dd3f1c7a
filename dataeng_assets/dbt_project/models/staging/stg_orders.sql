-- Grain: one row per order.
select
    order_id,
    customer_id,
    order_date,
    status as order_status,
    created_at,
    updated_at
from {{ source('raw', 'orders') }}
where not _deleted
