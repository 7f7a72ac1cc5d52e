{#- One row per segment (and account) and week, from Klaviyo's own weekly series (the tap's
    series_intervals must include 'weekly'): never summed from days. Empty when no weekly
    series was loaded. A view (Klaviyo's rows as loaded, with the change from the period before):
    a build costs nothing. change_from_previous compares with the week before, where loaded. -#}
{{ config(materialized='view') }}
with series as (
    select
        s.*,
        lag(s.total_members) over (
            partition by {{ account_column('s') }} s.segment_id order by s.bucket_day
        ) as previous_total
    from {{ ref('stg_segment_series') }} as s
    where s.series_interval = 'weekly'
)

select
    {{ account_column() }}
    segment_id,
    segment_name,
    bucket_day as week_start,
    total_members,
    members_added,
    members_removed,
    net_members_changed,
    is_complete,
    total_members - previous_total as change_from_previous,
    {{ growth_fraction('total_members - previous_total', 'previous_total') }} as pct_change_from_previous
from series
