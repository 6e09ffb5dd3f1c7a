-- Grain: one row per month and customer segment. A view over fact_sales: always current.
{{ config(materialized='view') }}
select
    cast(date_trunc('month', f.order_date) as date) as month,
    c.segment,
    sum(f.total_amount) as total_sales,
    count(*) as transaction_count
from {{ ref('fact_sales') }} as f
inner join {{ ref('dim_customer') }} as c on c.customer_key = f.customer_key
group by cast(date_trunc('month', f.order_date) as date), c.segment
