{#- Helpers shared by the growth models. -#}

{% macro growth_has_account() %}
  {#- Whether the loaded tables carry the many-accounts recipe's `account` column: the var
      klaviyo_account_column (true / false) decides, or with 'auto' the columns of
      segment_series do. At parse time (no database) it answers false; the SQL dbt runs is
      rendered again at execution, with the answer. -#}
  {%- set setting = var('klaviyo_account_column', 'auto') | string | lower -%}
  {%- if setting in ('true', 'yes', '1') -%}
    {{ return(true) }}
  {%- elif setting in ('false', 'no', '0') -%}
    {{ return(false) }}
  {%- endif -%}
  {%- if not execute -%}
    {{ return(false) }}
  {%- endif -%}
  {%- set columns = adapter.get_columns_in_relation(source('klaviyo', 'segment_series')) -%}
  {{ return('account' in (columns | map(attribute='name') | map('lower') | list)) }}
{% endmacro %}

{% macro account_column(alias=none) %}
  {#- "<alias>.account, " where the tables have an account column, else nothing: put it first
      in a select list, a group by or a partition by. -#}
  {%- if growth_has_account() -%}{{ (alias ~ '.') if alias else '' }}account, {% endif -%}
{% endmacro %}

{% macro same_account(left, right) %}
  {#- A join condition on the account ("and l.account = r.account"), or nothing. -#}
  {%- if growth_has_account() %} and {{ left }}.account = {{ right }}.account{% endif -%}
{% endmacro %}

{% macro growth_double() %}
  {#- A double precision type in both warehouses. -#}
  {{- 'double' if target.type == 'duckdb' else 'double precision' -}}
{% endmacro %}

{% macro growth_fraction(numerator, denominator) %}
  {#- numerator / denominator as a fraction; null where the denominator is 0 or null. -#}
  (cast({{ numerator }} as {{ growth_double() }}) / nullif({{ denominator }}, 0))
{% endmacro %}

{% macro days_interval(days) %}
  {#- An interval of `days` days, for RANGE window frames. -#}
  {{- "interval '" ~ days ~ " days'" -}}
{% endmacro %}
