-- A query, not a statement: warehouse/build.py refresh_marts makes the table from it, or
-- replaces its rows of periods from $since on (NULL: all periods).
-- Grain: one row per period and unit type, plus unit_type 'total'.
-- Figures cover the districts whose return is in effect for the period.
with periods as (
    select distinct period from core.district_returns where period >= coalesce($since, '')
),
expected as (
    select count(*) as districts_expected from core.districts
),
reported as (
    select period, count(*) as districts_reported
    from core.district_returns
    where sha256 is not null and period >= coalesce($since, '')
    group by period
),
unit_types as (
    select unnest(['xa', 'phuong', 'thi_tran']) as unit_type, unnest([1, 2, 3]) as sort_order
),
by_type as (
    select
        period,
        coalesce(unit_type, 'total') as unit_type,
        count(*) as units,
        count(*) filter (where eligible) as units_eligible,
        count(*) filter (where eligible and has_cell) as units_with_cell,
        coalesce(sum(cell_members) filter (where eligible and has_cell), 0)::bigint as cell_members,
        coalesce(sum(total_members), 0)::bigint as total_members,
        count(*) filter (where eligible and has_cell and basis = 'HD28') as cells_hd28,
        count(*) filter (where eligible and has_cell and basis = 'HD10') as cells_hd10,
        count(*) filter (where has_cell and not coalesce(eligible, false)) as cells_not_eligible
    from core.unit_returns
    where period >= coalesce($since, '')
    group by grouping sets ((period, unit_type), (period))
),
grid as (
    select p.period, t.unit_type, t.sort_order from periods p cross join unit_types t
    union all
    select p.period, 'total', 9 from periods p
),
final as (
    select
        g.period,
        g.unit_type,
        coalesce(b.units, 0) as units,
        coalesce(b.units_eligible, 0) as units_eligible,
        coalesce(b.units_with_cell, 0) as units_with_cell,
        pct(b.units_with_cell, b.units) as coverage_pct,
        coalesce(b.cell_members, 0) as cell_members,
        coalesce(b.total_members, 0) as total_members,
        pct(b.cell_members, b.total_members) as member_share_pct,
        coalesce(b.cells_hd28, 0) as cells_hd28,
        coalesce(b.cells_hd10, 0) as cells_hd10,
        coalesce(b.cells_not_eligible, 0) as cells_not_eligible,
        e.districts_expected,
        coalesce(r.districts_reported, 0) as districts_reported,
        coalesce(r.districts_reported, 0) = e.districts_expected as is_complete,
        g.sort_order
    from grid g
    cross join expected e
    left join by_type b on b.period = g.period and b.unit_type = g.unit_type
    left join reported r on r.period = g.period
)
select * exclude (sort_order) from final where period >= coalesce($since, '') order by period, sort_order;
