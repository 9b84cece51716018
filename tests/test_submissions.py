from pipeline.archive import FileVersion
from pipeline.submissions import Outcome, decide, district_status


def v(path, sha, modified, seen="2016-07-01T00:00:00+00:00"):
    return FileVersion("2016-06", path, path, sha, 1, modified, seen, f"objects/{sha}.xlsx")


def test_latest_accepted_is_in_effect_and_older_superseded():
    versions = [v("a.xlsx", "s1", "2016-07-01T00:00:00+00:00"), v("a2.xlsx", "s2", "2016-07-05T00:00:00+00:00")]
    outcomes = {"s1": Outcome("625", 0, 0), "s2": Outcome("625", 0, 1)}
    d = decide(versions, outcomes)
    assert d[("a.xlsx", "s1")].status == "superseded"
    assert d[("a2.xlsx", "s2")].status == "accepted_with_warnings" and d[("a2.xlsx", "s2")].in_effect


def test_later_refused_file_does_not_displace_accepted_one():
    versions = [v("a.xlsx", "s1", "2016-07-01T00:00:00+00:00"), v("fix.xlsx", "s2", "2016-07-09T00:00:00+00:00")]
    d = decide(versions, {"s1": Outcome("625", 0, 0), "s2": Outcome("625", 3, 0)})
    assert d[("a.xlsx", "s1")].status == "accepted" and d[("a.xlsx", "s1")].in_effect
    assert d[("fix.xlsx", "s2")].status == "refused"
    assert district_status(d, "625") == "accepted"


def test_same_bytes_under_two_names_is_one_submission():
    versions = [
        v("a.xlsx", "s1", "2016-07-01T00:00:00+00:00", seen="2016-07-01T00:00:00+00:00"),
        v("a (1).xlsx", "s1", "2016-07-02T00:00:00+00:00", seen="2016-07-02T00:00:00+00:00"),
    ]
    d = decide(versions, {"s1": Outcome("625", 0, 0)})
    assert d[("a.xlsx", "s1")].status == "accepted"
    assert d[("a (1).xlsx", "s1")].status == "duplicate"


def test_district_status_refused_and_missing():
    d = decide([v("x.xlsx", "s1", "2016-07-01T00:00:00+00:00")], {"s1": Outcome("625", 1, 0)})
    assert district_status(d, "625") == "refused"
    assert district_status(d, "626") == "missing"


def test_unknown_district_is_refused_even_without_errors():
    d = decide([v("x.xlsx", "s1", "2016-07-01T00:00:00+00:00")], {"s1": Outcome(None, 0, 0)})
    assert d[("x.xlsx", "s1")].status == "refused"


SAVED_TOGETHER = "2016-07-10T09:00:00+00:00"  # attachments saved at once share their modification second


def test_same_modification_time_the_workbook_saved_later_is_in_effect():
    # By path alone "BC.xlsx" would win (it sorts after "BC (sua lai).xlsx").
    versions = [v("BC.xlsx", "s1", SAVED_TOGETHER), v("BC (sua lai).xlsx", "s2", SAVED_TOGETHER)]
    outcomes = {
        "s1": Outcome("625", 0, 0, saved_at="2016-07-02T08:00:00"),
        "s2": Outcome("625", 0, 0, saved_at="2016-07-08T15:30:00"),
    }
    d = decide(versions, outcomes)
    assert d[("BC (sua lai).xlsx", "s2")].in_effect
    assert d[("BC.xlsx", "s1")].status == "superseded"


def test_same_modification_time_a_workbook_without_saved_time_loses():
    versions = [v("BC.xlsx", "s1", SAVED_TOGETHER), v("BC (sua lai).xlsx", "s2", SAVED_TOGETHER)]
    d = decide(versions, {"s1": Outcome("625", 0, 0), "s2": Outcome("625", 0, 0, saved_at="2016-07-02T08:00:00")})
    assert d[("BC (sua lai).xlsx", "s2")].in_effect


def test_modification_time_decides_before_the_workbook_saved_time():
    versions = [v("a.xlsx", "s1", "2016-07-01T00:00:00+00:00"), v("b.xlsx", "s2", "2016-07-05T00:00:00+00:00")]
    outcomes = {"s1": Outcome("625", 0, 0, saved_at="2016-07-09T00:00:00"), "s2": Outcome("625", 0, 0, saved_at="2016-06-30T00:00:00")}
    assert decide(versions, outcomes)[("b.xlsx", "s2")].in_effect
