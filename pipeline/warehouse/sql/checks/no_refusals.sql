-- No file of the period was refused.
select
    p.period,
    count(f.sha256) = 0 as passed,
    case when count(f.sha256) = 0 then 'no refused files'
         else format('{} refused: {}', count(f.sha256), string_agg(f.file_name, ', ' order by f.file_name)) end as detail
from (select unnest($periods) as period) p
left join audit.files f on f.period = p.period and f.status = 'refused'
group by p.period
order by p.period;
