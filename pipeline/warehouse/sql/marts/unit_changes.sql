-- A query, not a statement: warehouse/build.py refresh_marts makes the table from it, or
-- replaces its rows of periods from $since on (NULL: all periods).
-- Grain: one row per period and unit in core.unit_returns, compared with the
-- same unit's previous reported period (the latest earlier period in which its
-- district's return was in effect; a district that skipped a period is compared
-- with the period before).
--
-- has_cell is the cell as the return states it, whether or not the unit is
-- eligible: a cell that exists in a unit marked not eligible has not been
-- dissolved (it is a candidate for dissolution). `counted` is what the
-- province figures count (eligible and with a cell), so
-- sum(counted_change) over a period reconciles with marts.province_trend.
with current_rows as (
    select
        period,
        district_code,
        unit_code,
        unit_name,
        unit_type,
        coalesce(has_cell, false) as has_cell,
        coalesce(eligible and has_cell, false) as counted,
        total_members,
        -- A unit without a cell has no cell members, whatever a stray cell says.
        case when coalesce(has_cell, false) then cell_members else 0 end as cell_members,
        established_on,
        basis,
        note
    from core.unit_returns
    -- The rows asked for, and each unit's latest row before them, which they are compared with.
    where period >= coalesce($since, '')
       or (unit_code, period) in (
           select (unit_code, max(period)) from core.unit_returns where period < $since group by unit_code
       )
),
ordered as (
    select
        *,
        lag(period) over w as previous_period,
        lag(has_cell) over w as previous_has_cell,
        lag(counted) over w as previous_counted,
        lag(total_members) over w as previous_total_members,
        lag(cell_members) over w as previous_cell_members
    from current_rows
    window w as (partition by unit_code order by period)
),
final as (
    select
        o.period,
        o.district_code,
        d.district_name,
        o.unit_code,
        o.unit_name,
        o.unit_type,
        o.has_cell,
        o.counted,
        o.total_members,
        o.cell_members,
        o.established_on,
        o.basis,
        o.note,
        o.previous_period,
        o.previous_has_cell,
        o.previous_counted,
        o.previous_total_members,
        o.previous_cell_members,
        case
            when o.previous_period is null then 'first_report'
            when o.has_cell and not o.previous_has_cell then 'cell_established'
            when o.previous_has_cell and not o.has_cell then 'cell_dissolved'
            else 'unchanged'
        end as cell_change,
        o.total_members - o.previous_total_members as member_change,
        o.cell_members - o.previous_cell_members as cell_member_change,
        o.counted::integer - o.previous_counted::integer as counted_change
    from ordered o
    left join core.districts d on d.district_code = o.district_code
)
select * from final where period >= coalesce($since, '') order by period, district_code, unit_code;
