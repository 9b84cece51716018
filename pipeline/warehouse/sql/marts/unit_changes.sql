-- Grain: one row per unit and period, compared with the unit's previous reported period.
create or replace table marts.unit_changes as
with ordered as (
    select
        period,
        district_code,
        unit_code,
        unit_name,
        unit_type,
        coalesce(eligible and has_cell, false) as has_cell,
        total_members,
        cell_members,
        lag(period) over w as previous_period,
        lag(coalesce(eligible and has_cell, false)) over w as previous_has_cell,
        lag(total_members) over w as previous_total_members,
        lag(cell_members) over w as previous_cell_members
    from core.unit_returns
    window w as (partition by unit_code order by period)
),
final as (
    select
        *,
        case
            when previous_period is null then 'first_report'
            when has_cell and not previous_has_cell then 'cell_established'
            when previous_has_cell and not has_cell then 'cell_dissolved'
            else 'unchanged'
        end as cell_change,
        total_members - previous_total_members as member_change,
        coalesce(cell_members, 0) - coalesce(previous_cell_members, 0) as cell_member_change
    from ordered
)
select * from final order by unit_code, period;
