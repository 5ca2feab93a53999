"""The UI as a person uses it: `dagster dev` over a micro home, driven by a real headless Chromium.

Playwright (a test extra) drives Debian's `chromium` package: Playwright's own browser download
does not work on this project's machines. `make test` installs both if missing (.ci/install-browser);
without a browser this test fails and says how to install one, rather than skipping silently.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dagster import DagsterInstance

from dataenvgym_dagster.cli import INSTANCE_SETTINGS
from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.jobs import FOUNDATIONS_JOB

from .conftest import write_catalog

pytestmark = [pytest.mark.slow, pytest.mark.ui]

REPOSITORY = Path(__file__).resolve().parents[1]
# The newsletter pop-up of a fresh instance would cover the page.
TEST_INSTANCE_SETTINGS = INSTANCE_SETTINGS + "nux:\n  enabled: false\ntelemetry:\n  enabled: false\n"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("no chromium on PATH: install Debian's package (apt-get install -y chromium) or run `make test`, which does")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dagster_dev(tmp_path):
    """`dagster dev` (webserver + daemon) over a micro home whose foundations are materialised; its URL."""
    catalog_file = write_catalog(tmp_path / "experiments.yaml")
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text(TEST_INSTANCE_SETTINGS)
    instance = DagsterInstance.local_temp(str(home / "dagster"))
    foundations = build_definitions(home=str(home), experiments_file=catalog_file).resolve_job_def(FOUNDATIONS_JOB)
    assert foundations.execute_in_process(partition_key="arithmetic", instance=instance).success

    port = free_port()
    env = {**os.environ, "DATAENVGYM_HOME": str(home), "DATAENVGYM_EXPERIMENTS": str(catalog_file),
           "DAGSTER_HOME": str(home / "dagster")}
    log = open(tmp_path / "dagster_dev.log", "w")  # noqa: SIM115 - closed below, after the process
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "dev", "-w", str(REPOSITORY / "workspace.yaml"), "-p", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2)
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "dagster_dev.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "dagster dev did not serve within 180 s"
                time.sleep(1)
        yield url, tmp_path / "dagster_dev.log", home
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def test_materialise_an_iteration_from_the_ui_and_find_its_learning_curves(dagster_dev):
    from playwright.sync_api import expect, sync_playwright

    url, log, home = dagster_dev
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=120_000)  # the code location loads after the server answers

        # Graph nodes, and the links to other groups, name their iteration (the UI shows a key's last part).
        page.goto(f"{url}/locations/dataenvgym_dagster/asset-groups/foundations")
        expect(page.get_by_text("it0_checkpoint").first).to_be_visible()

        # The asset graph of iteration 0's job, then "Materialize all" opens the partition dialog.
        page.goto(f"{url}/locations/dataenvgym_dagster/jobs/iteration_0_job")
        expect(page.get_by_text("it0_checkpoint").first).to_be_visible()
        page.get_by_role("button", name="Materialize all").first.click()
        dialog = page.locator("[role=dialog]")
        expect(dialog.get_by_text("Partition selection")).to_be_visible()
        for value in ("arithmetic", "skill_list"):  # the domain, then the experiment
            dialog.get_by_text("Select a partition or create one").first.click()
            page.locator("[data-radix-popper-content-wrapper]").last.get_by_text(value, exact=True).first.click()
            page.keyboard.press("Escape")
        dialog.get_by_role("button", name="Launch 1 run").click()

        toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
        run_id = re.search(r"[0-9a-f]{8}", toast.inner_text()).group()

        # The run: its page, from the runs list, refreshes itself until the run succeeds.
        page.goto(f"{url}/runs")
        page.locator(f"a[href^='/runs/{run_id}']").first.click()
        expect(page).to_have_url(re.compile(rf"/runs/{run_id}"))
        expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=240_000)

        # The evaluation asset shows its learning curve inline, and the per-skill plot one click away.
        page.goto(f"{url}/assets/it0_test_eval?partition=arithmetic%7Cskill_list")
        inline = page.locator("img[alt='mean test accuracy by iteration']").first
        expect(inline).to_be_visible()
        assert inline.evaluate("image => image.naturalWidth") >= 80  # decoded, not a broken link
        expect(page.get_by_text("learning_curves_at_a_glance")).to_be_visible()
        expect(page.get_by_text("test accuracy, iterations 0–0")).to_be_visible()
        row = page.locator("tr", has=page.get_by_text("learning_curves", exact=True))
        row.get_by_text("[Show Markdown]").click()
        plot = page.locator("[role=dialog] img")
        expect(plot).to_be_visible()
        assert plot.get_attribute("src").startswith("data:image/png;base64,")
        assert plot.evaluate("image => image.naturalWidth") > 100  # a decoded picture, not a broken link
        browser.close()
    assert "BetaWarning" not in log.read_text()
    # Launched from the job's page, the run is named after the job, not Dagster's `__ASSET_JOB`.
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        (run,) = [r for r in instance.get_runs() if r.run_id.startswith(run_id)]
        assert run.job_name == "iteration_0_job"
