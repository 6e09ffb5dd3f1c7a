-- Every customer in dim_customer has exactly one current version.
select customer_id, count(*) filter (where is_current) as current_rows
from {{ ref('dim_customer') }}
group by customer_id
having count(*) filter (where is_current) <> 1
