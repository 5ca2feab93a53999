"""Names of the teaching loop's per-iteration assets: ``it<t>_<artefact>``, short enough to read in the UI.

The UI labels an asset graph node with its key's last part only, cut in the middle past 18
characters when the graph is zoomed out (31 zoomed in). ``iteration_1_validation_evaluation``
became ``iterat…_evaluation``, the same for validation and test. So each key is ``it<t>_`` plus a
short artefact name, 18 characters at most for iterations 0–9: ``it1_val_eval``, ``it1_test_eval``,
``it1_generated_data``, ``it1_checkpoint``. Code and docs use the artefact names (the paper's
vocabulary, the left column below); this module is the one place that maps them to keys.

No dependency on Dagster: the warehouse and the loop's lineage rows name assets too.
"""

from __future__ import annotations

LABEL_LIMIT = 18  # characters the zoomed-out asset graph shows of a node's name without cutting it

SHORT_NAMES = {
    "experiment_config": "experiment",
    "student_checkpoint": "checkpoint",
    "validation_evaluation": "val_eval",
    "test_evaluation": "test_eval",
    "skill_taxonomy": "skill_taxonomy",
    "environment_state": "env_state",
    "data_generation_plan": "data_plan",
    "generated_dataset": "generated_data",
}


def iteration_asset_name(iteration: int, artefact: str) -> str:
    """``it<t>_<short name>`` of ``artefact`` (e.g. ``validation_evaluation`` → ``it1_val_eval``)."""
    try:
        return f"it{iteration}_{SHORT_NAMES[artefact]}"
    except KeyError:
        raise ValueError(f"unknown loop artefact {artefact!r}; artefacts: {', '.join(SHORT_NAMES)}") from None


def legacy_asset_name(iteration: int, artefact: str) -> str:
    """The key an artefact had before the short names (``iteration_1_validation_evaluation``): homes
    written then keep files under it, which the IO manager removes when it writes the new one."""
    return f"iteration_{iteration}_{artefact}"


def parse_iteration_asset_name(name: str) -> tuple[int, str] | None:
    """``(iteration, artefact)`` of an ``it<t>_<short name>`` key, or ``None`` for other assets."""
    head, _, short = name.partition("_")
    artefacts = {value: key for key, value in SHORT_NAMES.items()}
    if not head.startswith("it") or not head[2:].isdigit() or short not in artefacts:
        return None
    return int(head[2:]), artefacts[short]
