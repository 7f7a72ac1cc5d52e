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

{% macro growth_incremental_scope(day_column='day') %}
  {#- What an incremental run of a per-day model recomputes, read from the model itself at
      execution: `first_day`, the lookback (var growth_lookback_days) before the newest day it
      holds, as 'YYYY-MM-DD' (none when it is empty), and `new_segment_ids`, ids of the
      segments table not in it yet (all their days are new). -#}
  {%- set lookback = var('growth_lookback_days') | int -%}
  {%- set newest = run_query(
      "select cast(max(" ~ day_column ~ ") - " ~ lookback ~ " as varchar) from " ~ this
  ) -%}
  {%- set first_day = newest.columns[0].values()[0] -%}
  {%- set new_ids = run_query(
      "select distinct seg.id from " ~ source('klaviyo', 'segments') ~ " as seg "
      ~ "where not exists (select 1 from " ~ this ~ " as t where t.segment_id = seg.id"
      ~ same_account('t', 'seg') ~ ")"
  ) -%}
  {{ return({'first_day': first_day, 'new_segment_ids': new_ids.columns[0].values() | list}) }}
{% endmacro %}

{% macro growth_in_scope(scope, day_column='day', context_days=0, utc_column=none) %}
  {#- A predicate: the row is one an incremental run recomputes (its day is at most
      context_days before scope.first_day, or its segment is new). Filtering by day and
      segment id alone takes every account's rows of a (segment_id, day) together, so
      delete+insert on (segment_id, day) replaces exactly the recomputed rows. utc_column (the
      bucket's UTC start, as loaded) adds a looser bound the database can apply while scanning
      (the local day is at most 14 hours off the UTC one), so the old rows are never decoded. -#}
  (
    {%- if scope.first_day is none %} true
    {%- else %} {{ day_column }} >= cast('{{ scope.first_day }}' as date) - {{ context_days }}
      {%- if utc_column and not scope.new_segment_ids %}
        and {{ utc_column }} >= cast('{{ scope.first_day }}' as timestamp) - interval '{{ context_days + 2 }} days'
      {%- endif %}
    {%- endif %}
    {%- if scope.new_segment_ids %}
    or segment_id in (
      {%- for segment_id in scope.new_segment_ids -%}
        '{{ segment_id | replace("'", "''") }}'{{ ', ' if not loop.last }}
      {%- endfor -%}
    )
    {%- endif %}
  )
{% endmacro %}

{#- Klaviyo's own series of one interval ('weekly' or 'monthly'), one row per segment (and account)
    and period, with the change from the period before (where loaded): the weekly and monthly
    models are this, never sums of days. -#}
{% macro klaviyo_period_series(interval, start_column) %}
with series as (
    select
        s.*,
        lag(s.total_members) over (
            partition by {{ account_column('s') }} s.segment_id order by s.bucket_day
        ) as previous_total
    from {{ ref('stg_segment_series') }} as s
    where s.series_interval = '{{ interval }}'
)

select
    {{ account_column() }}
    segment_id,
    segment_name,
    bucket_day as {{ start_column }},
    total_members,
    members_added,
    members_removed,
    net_members_changed,
    is_complete,
    total_members - previous_total as change_from_previous,
    {{ growth_fraction('total_members - previous_total', 'previous_total') }} as pct_change_from_previous
from series
{% endmacro %}
