-- Grain: one row per customer with at least one order. LTV is the sum of every payment of the
-- customer's orders; segment bins as the seed's pd.cut(bins=[0, 100, 500, inf]): right-closed,
-- so exactly 100 is low and exactly 500 is medium; an LTV of 0 has no segment.
with payments as (
    select order_id, sum(amount) as paid
    from {{ ref('stg_payments') }}
    group by order_id
),
per_customer as (
    select
        o.customer_id,
        min(o.order_date) as first_order,
        max(o.order_date) as most_recent_order,
        count(distinct o.order_id) as number_of_orders,
        cast(coalesce(sum(p.paid), 0) as decimal(14, 2)) as customer_lifetime_value
    from {{ ref('stg_orders') }} as o
    left join payments as p on p.order_id = o.order_id
    group by o.customer_id
)
select
    *,
    case
        when customer_lifetime_value <= 0 then null
        when customer_lifetime_value <= 100 then 'low'
        when customer_lifetime_value <= 500 then 'medium'
        else 'high'
    end as segment
from per_customer
