-- Grain: one row per customer: orders, lifetime value (sum of payments of orders not
-- cancelled) and the value segment. Upstream tasks are referenced by name in double braces.
with paid_orders as (
    select orders.order_id, orders.customer_id, orders.order_date, sum(payments.amount) as amount
    from {{ extract_orders }} as orders
    join {{ extract_payments }} as payments on payments.order_id = orders.order_id
    where not orders._deleted and not payments._deleted and orders.status <> 'cancelled'
    group by orders.order_id, orders.customer_id, orders.order_date
)
select
    customers.customer_id,
    customers.email,
    customers.segment as customer_segment,
    count(paid_orders.order_id) as number_of_orders,
    min(paid_orders.order_date) as first_order,
    max(paid_orders.order_date) as most_recent_order,
    cast(coalesce(sum(paid_orders.amount), 0) as decimal(14, 2)) as lifetime_value,
    case
        when coalesce(sum(paid_orders.amount), 0) >= 1000 then 'high'
        when coalesce(sum(paid_orders.amount), 0) >= 100 then 'medium'
        else 'low'
    end as value_segment
from {{ extract_customers }} as customers
left join paid_orders on paid_orders.customer_id = customers.customer_id
where not customers._deleted
group by customers.customer_id, customers.email, customers.segment
