{#- For consecutive complete days, a day's total_members minus the day before's equals that day's
    net_members_changed. Klaviyo does not promise it, so the severity is the var
    total_change_severity (warn by default; the project's tests run it as an error against the
    stand-in, whose numbers keep it). -#}
{{ config(severity=var('total_change_severity')) }}

select
    {{ account_column('d') }}
    d.segment_id,
    d.day,
    d.total_members - p.total_members as total_change,
    d.net_members_changed
from {{ ref('segment_growth_daily') }} as d
inner join {{ ref('segment_growth_daily') }} as p
    on p.segment_id = d.segment_id{{ same_account('p', 'd') }} and p.day = d.day - 1
where d.is_complete
    and p.is_complete
    and d.total_members - p.total_members <> d.net_members_changed
