"""One micro teaching run of the tool-use domain through Dagster: procedural MnMs-style plans, tiny student."""

from __future__ import annotations

import json

import pytest

from dataenvgym_dagster.domain.tool_use.scoring import METRICS
from dataenvgym_dagster.machinery.warehouse import Warehouse
from dataenvgym_dagster_tests.conftest import MICRO_CATALOG, TOOL_USE_DOMAIN, make_workspace

pytestmark = pytest.mark.slow

TOOL_USE_MICRO = {
    "iterations": 1,
    "domains": {"tool_use": TOOL_USE_DOMAIN},
    "experiments": {"skill_list": MICRO_CATALOG["experiments"]["skill_list"]},
}


def test_a_tool_use_run_evaluates_plans_and_records_every_plan_metric(tmp_path):
    workspace = make_workspace(tmp_path, TOOL_USE_MICRO)
    workspace.run_foundations("tool_use")
    assert workspace.run_loop("skill_list", domain="tool_use").success
    with Warehouse(workspace.home).connect() as db:
        evaluated = db.execute(
            "SELECT iteration, split, count(*) FROM evaluation_results WHERE domain = 'tool_use' GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        metrics = [json.loads(m) for (m,) in db.execute("SELECT metrics FROM evaluation_results WHERE domain = 'tool_use'").fetchall()]
        view = db.execute("SELECT iteration, split, n, plan_accuracy, plan_valid FROM tool_use_metrics ORDER BY ALL").fetchall()
        rejected = db.execute(
            "SELECT count(*) FILTER (WHERE rejection_reason = 'wrong_answer'), count(*) FROM generated_examples WHERE domain = 'tool_use'"
        ).fetchone()
    assert evaluated == [(0, "test", 24), (0, "validation", 24), (1, "test", 24), (1, "validation", 24)]
    counts = {"argname_gold", "argname_predicted", "argname_matched"}
    for m in metrics:  # every per-example metric, each tool mark, fractions in [0, 1] and label counts
        assert set(METRICS) <= set(m) and all(k in METRICS or k.startswith(("tool_gold:", "tool_predicted:")) for k in m)
        assert all(0.0 <= v <= 1.0 for k, v in m.items() if k not in counts) and all(m[k] == int(m[k]) for k in counts)
    assert all(0.0 <= figure <= 100.0 for *_, accuracy, valid in view for figure in (accuracy, valid))  # MnMs's 0-100 scale
    assert [(i, s, n) for i, s, n, _, _ in view] == [(i, s, 24) for i, s, _ in evaluated]
    assert rejected[0] == 0 and rejected[1] >= 96  # the offline teacher's plans all pass the catalogue check
