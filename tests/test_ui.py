"""The Dagster UI end to end: `dagster dev` on a free port, queried over GraphQL.

Starts with an empty raw folder, checks the UI lists the assets (with group, owners,
descriptions and checks), the nightly schedule and the raw-folder sensor, then drops
the sample period in and waits for the sensor's run to succeed. Takes about a minute.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data/raw/2016-06"
INSTANCE_YAML = """\
telemetry:
  enabled: false
nux:
  enabled: false
run_queue:
  max_concurrent_runs: 1
  dequeue_interval_seconds: 1
"""

ASSETS = """{ assetNodes { assetKey { path } groupName description
  owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
  assetChecksOrError { ... on AssetChecks { checks { name } } } } }"""
AUTOMATION = """{ repositoriesOrError { ... on RepositoryConnection { nodes { name
  schedules { name cronSchedule executionTimezone scheduleState { status } }
  sensors { name minIntervalSeconds sensorState { status } } } } } }"""
RUNS = """query($key: String!, $value: String!) {
  runsOrError(filter: {tags: [{key: $key, value: $value}]}) {
    ... on Runs { results { runId status tags { key value } } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.load(response)
    assert "errors" not in payload, payload["errors"]
    return payload["data"]


def wait_for(what: str, probe, timeout: float, proc: subprocess.Popen, log: Path, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-4000:]}")
        try:
            value = probe()
        except (urllib.error.URLError, ConnectionError, OSError):
            value = None
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{log.read_text()[-4000:]}")


def test_ui_lists_automation_and_sensor_runs_new_period(tmp_path):
    home, raw, out = tmp_path / "dagster_home", tmp_path / "raw", tmp_path / "out"
    for d in (home, raw, out):
        d.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PIPELINE_RAW_DIR": str(raw),
        "PIPELINE_WAREHOUSE": str(out / "warehouse.duckdb"),
        "PIPELINE_SENSOR_INTERVAL": "2",
        "PIPELINE_SENSOR_SETTLE_SECONDS": "0",
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    log = tmp_path / "dagster.log"
    dagster = Path(sys.executable).with_name("dagster")
    with log.open("wb") as log_fh:
        proc = subprocess.Popen(
            [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: webserver, daemon, code servers, runs
        )
    try:
        started = time.monotonic()

        def repositories():
            repos = graphql(port, AUTOMATION)["repositoriesOrError"].get("nodes") or []
            return repos if any(r["sensors"] for r in repos) else None

        repos = wait_for("the webserver and code location", repositories, 90, proc, log)
        print(f"UI up after {time.monotonic() - started:.1f} s")

        nodes = {"/".join(n["assetKey"]["path"]): n for n in graphql(port, ASSETS)["assetNodes"]}
        assert {"raw_returns", "parsed_returns", "marts/province_summary", "province_report", "district_feedback"} <= set(nodes)
        for key, node in nodes.items():
            assert node["description"], key
            assert node["groupName"] in {"ingest", "warehouse", "marts", "reports"}, key
            assert {"team": "ban-to-chuc"} in node["owners"], key
        checks = {c["name"] for n in nodes.values() for c in (n["assetChecksOrError"].get("checks") or [])}
        assert {"province_equals_districts", "units_match_register", "complete", "no_refusals"} <= checks

        [schedule] = [s for r in repos for s in r["schedules"] if s["name"] == "nightly_refresh"]
        assert schedule["cronSchedule"] == "0 1 * * *"
        assert schedule["executionTimezone"] == "Asia/Ho_Chi_Minh"
        assert schedule["scheduleState"]["status"] == "RUNNING"
        [sensor] = [s for r in repos for s in r["sensors"] if s["name"] == "raw_folder_sensor"]
        assert sensor["sensorState"]["status"] == "RUNNING"
        assert sensor["minIntervalSeconds"] == 2

        dropped = time.monotonic()
        shutil.copytree(SAMPLE, raw / "2016-06")

        def finished_run():
            runs = graphql(port, RUNS, {"key": "period", "value": "2016-06"})["runsOrError"]["results"]
            done = [r for r in runs if r["status"] in {"SUCCESS", "FAILURE", "CANCELED"}]
            return done[0] if done else None

        run = wait_for("the sensor's run for 2016-06", finished_run, 180, proc, log, interval=2)
        print(f"run {run['status']} {time.monotonic() - dropped:.1f} s after the files were dropped")
        assert run["status"] == "SUCCESS", log.read_text()[-4000:]
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags["source"] == "sensor" and tags["dagster/partition"] == "2016-06"
        assert (out / "warehouse.duckdb").exists()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
