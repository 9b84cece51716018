"""Screenshot of the Dagster asset graph for the docs (docs/img/asset_graph.png).

Runs the pipeline once on data/raw into a scratch folder (so the graph shows
materialised partitions and check results), starts dagster-webserver on a free
port against that scratch instance, and has headless Chromium capture the page.

    uv run python scripts/screenshot_asset_graph.py [--out docs/img/asset_graph.png] [--path /asset-groups]

Needs Chromium (`apt-get install -y chromium`); not used by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dagster-webserver exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(1)
    raise SystemExit("dagster-webserver did not come up")


def asset_groups(port: int) -> list[str]:
    body = json.dumps({"query": "{ assetNodes { groupName } }"}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return sorted({n["groupName"] for n in json.load(response)["data"]["assetNodes"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/img/asset_graph.png")
    parser.add_argument("--path", default="/asset-groups", help="UI page to capture")
    parser.add_argument("--size", default="1600,1300")
    parser.add_argument("--no-run", action="store_true", help="skip the pipeline run (graph without status)")
    args = parser.parse_args()
    browser = next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        raise SystemExit("Chromium not found: apt-get install -y chromium")

    scratch = Path(tempfile.mkdtemp(prefix="asset-graph-"))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(scratch / "dagster_home"),
        "PIPELINE_WAREHOUSE": str(scratch / "out/warehouse.duckdb"),
    }
    Path(env["DAGSTER_HOME"]).mkdir(parents=True)
    (Path(env["DAGSTER_HOME"]) / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    bin_dir = Path(sys.executable).parent
    if not args.no_run:
        subprocess.run([str(bin_dir / "pipeline"), "run", "--quiet"], cwd=ROOT, env=env, check=False)

    port = free_port()
    proc = subprocess.Popen(
        [str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_server(port, proc)
        url = f"http://127.0.0.1:{port}{args.path}"
        if args.path.rstrip("/") == "/asset-groups":
            # With several groups the lineage page starts collapsed; its `expanded` query
            # parameter opens the listed groups (ids as the UI builds them).
            url += "?expanded=" + ",".join(f"global@global:{g}" for g in asset_groups(port))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", f"--user-data-dir={scratch / 'chromium'}",
                # The UI is a single-page app: give its scripts time to fetch and lay out the graph.
                "--virtual-time-budget=20000",
                f"--screenshot={args.out.resolve()}", f"--window-size={args.size}",
                url,
            ],
            check=True,
            timeout=180,
        )  # fmt: skip
        print(f"wrote {args.out}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
