{#- Klaviyo's weekly (monthly) buckets of a segment start at least 7 (28) days apart. Buckets
    loaded with two alignments (a week from Monday beside one from Tuesday, as a tap reading
    different windows can load) overlap, and a chart or sum over them counts days twice. A
    warning: the rows are as loaded, the fix is in the load. -#}
{{ config(severity='warn') }}

{% for model, column, days in [
    ('segment_growth_weekly', 'week_start', 7),
    ('segment_growth_monthly', 'month_start', 28),
] %}
select '{{ model }}' as model, {{ account_column() }} segment_id, {{ column }} as period_start, next_start
from (
    select
        {{ account_column() }}
        segment_id,
        {{ column }},
        lead({{ column }}) over (
            partition by {{ account_column() }} segment_id order by {{ column }}
        ) as next_start
    from {{ ref(model) }}
) as periods
where next_start < {{ column }} + {{ days }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
