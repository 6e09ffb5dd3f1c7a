-- Grain: one row per payment (an order may have several).
select
    payment_id,
    order_id,
    payment_method,
    amount,
    created_at
from {{ source('raw', 'payments') }}
where not _deleted
