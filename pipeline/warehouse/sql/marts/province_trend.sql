-- Grain: one row per period: the province totals and their change since the previous period.
create or replace table marts.province_trend as
with totals as (
    select * from marts.province_summary where unit_type = 'total'
),
final as (
    select
        period,
        units,
        units_with_cell,
        coverage_pct,
        cell_members,
        total_members,
        member_share_pct,
        cells_hd28,
        districts_reported,
        districts_expected,
        is_complete,
        units_with_cell - lag(units_with_cell) over (order by period) as units_with_cell_change,
        cell_members - lag(cell_members) over (order by period) as cell_members_change,
        coverage_pct - lag(coverage_pct) over (order by period) as coverage_pct_change
    from totals
)
select * from final order by period;
