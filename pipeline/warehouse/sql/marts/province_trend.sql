-- A query, not a statement: warehouse/build.py refresh_marts makes the table from it, or
-- replaces its rows of periods from $since on (NULL: all periods).
-- Grain: one row per period: the province totals and their change since the
-- previous period in the warehouse. A change is only a like-for-like comparison
-- when both periods are complete (`comparable`); otherwise it also moves with
-- the districts that did or did not report.
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
        cells_hd10,
        districts_reported,
        districts_expected,
        is_complete,
        lag(period) over w as previous_period,
        coalesce(is_complete and lag(is_complete) over w, false) as comparable,
        units_with_cell - lag(units_with_cell) over w as units_with_cell_change,
        cell_members - lag(cell_members) over w as cell_members_change,
        total_members - lag(total_members) over w as total_members_change,
        cells_hd28 - lag(cells_hd28) over w as cells_hd28_change,
        -- Percent-point differences of one-decimal figures, kept at one decimal
        -- (51.8 - 44.1 is 7.7, not 7.699999999999996).
        round(coverage_pct - lag(coverage_pct) over w, 1)::double as coverage_pct_change,
        round(member_share_pct - lag(member_share_pct) over w, 1)::double as member_share_pct_change
    from totals
    window w as (order by period)
)
select * from final where period >= coalesce($since, '') order by period;
