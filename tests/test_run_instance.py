"""The Dagster instance `pipeline run` records its runs in."""

from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager

from pipeline import runner


def test_a_new_dagster_home_gets_the_projects_settings(tmp_path):
    home = tmp_path / "home"
    runner.prepare_dagster_home(home)
    text = (home / "dagster.yaml").read_text()
    assert "telemetry:\n  enabled: false" in text
    assert [p.name for p in home.iterdir()] == ["dagster.yaml"]  # no temporary file left


def test_an_existing_dagster_yaml_is_never_touched(tmp_path):
    (tmp_path / "dagster.yaml").write_text("# mine\n")
    runner.prepare_dagster_home(tmp_path)
    assert (tmp_path / "dagster.yaml").read_text() == "# mine\n"


def test_run_instance_has_telemetry_off_and_no_terminal_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    instance = runner._instance()
    try:
        assert not instance.telemetry_enabled
        assert isinstance(instance.compute_log_manager, NoOpComputeLogManager)
    finally:
        instance.dispose()
