{# Models land in the schema their folder names (staging, analytics, snapshots), not
   "<target>_<schema>": asset keys are [schema, table] and must match the SQL names. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name if custom_schema_name else target.schema }}
{%- endmacro %}
