from pipeline.definitions import defs


def test_definitions_load_with_groups_and_descriptions():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_returns", "parsed_returns", "audit/files", "marts/province_summary", "province_report"} <= keys
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.group_name in {"ingest", "warehouse", "reports"}, key
    assert defs.resolve_job_def("refresh_periods")
