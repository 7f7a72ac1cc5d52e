{#- segment_series with typed columns: the bucket's local day as a date whatever the loader
    stored (target-duckdb: text; target-postgres: a date), and the segment's name. -#}
select
    {{ account_column('s') }}
    s.segment_id,
    seg.name as segment_name,
    s."interval" as series_interval,
    -- bucket_date is the account's local day; rows loaded before the stream had it fall back
    -- to the UTC day of date_time (the same day for a UTC account).
    coalesce(cast(s.bucket_date as date), cast(s.date_time as date)) as bucket_day,
    -- The bucket's start in UTC as loaded (for filters the database applies while scanning).
    s.date_time as bucket_start_utc,
    cast(s.total_members as bigint) as total_members,
    cast(s.members_added as bigint) as members_added,
    cast(s.members_removed as bigint) as members_removed,
    cast(s.net_members_changed as bigint) as net_members_changed,
    coalesce(cast(s.is_complete as boolean), false) as is_complete
from {{ source('klaviyo', 'segment_series') }} as s
left join {{ source('klaviyo', 'segments') }} as seg
    on seg.id = s.segment_id{{ same_account('seg', 's') }}
