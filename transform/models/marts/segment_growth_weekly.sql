{#- One row per segment (and account) and week, from Klaviyo's own weekly series (the tap's
    series_intervals must include 'weekly'): never summed from days. Empty when no weekly
    series was loaded. A view (Klaviyo's rows as loaded, with the change from the period before):
    a build costs nothing. change_from_previous compares with the week before, where loaded. -#}
{{ config(materialized='view') }}
{{ klaviyo_period_series('weekly', 'week_start') }}
