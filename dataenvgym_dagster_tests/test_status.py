"""`dataenvgym status`: what is missing or out of date for the partitions the catalogue runs (the UI counts
every domain × experiment pair as a partition and marks no partitioned asset stale)."""

import pytest

from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.defs.status import experiment_status


@pytest.mark.slow
def test_after_redoing_an_upstream_step_the_work_built_on_it_is_out_of_date_and_later_iterations_missing(workspace):
    workspace.run_foundations()
    iteration_0 = [iteration_key(0, name) for name in ("experiment_config", "student_checkpoint", "validation_evaluation", "test_evaluation")]
    assert workspace.run_loop(asset_selection=iteration_0).success
    foundations, loop = experiment_status(workspace.defs, workspace.instance, workspace.catalog)
    assert foundations.describe() == "arithmetic: up to date"
    assert not loop.stale and set(iteration_0).isdisjoint(loop.missing) and iteration_key(1, "skill_taxonomy") in loop.missing

    workspace.run_foundations()  # a new base student: iteration 0 was built on the old one

    foundations, loop = experiment_status(workspace.defs, workspace.instance, workspace.catalog)
    assert foundations.describe() == "arithmetic: up to date"
    assert {k.to_user_string() for k in loop.stale} == {"it0_checkpoint", "it0_val_eval", "it0_test_eval"}
    assert iteration_key(0, "experiment_config") not in loop.stale + loop.missing
    assert iteration_key(1, "generated_dataset") in loop.missing and iteration_key(2, "test_evaluation") in loop.missing
    assert loop.describe().startswith("arithmetic|skill_list: 3 out of date: it0_checkpoint, ")
    assert "never materialised: it1_skill_taxonomy, " in loop.describe()
