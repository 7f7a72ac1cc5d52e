{#- One row per segment (and account) and month, from Klaviyo's own monthly series (the tap's
    series_intervals must include 'monthly'): never summed from days. Empty when no monthly
    series was loaded. A view (Klaviyo's rows as loaded, with the change from the period before):
    a build costs nothing. change_from_previous compares with the month before, where loaded. -#}
{{ config(materialized='view') }}
{{ klaviyo_period_series('monthly', 'month_start') }}
