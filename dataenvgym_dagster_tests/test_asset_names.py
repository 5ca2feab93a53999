"""What a graph node shows names its iteration and artefact: keys the UI never cuts (asset_names.py)."""

import polars as pl
import pytest
from dagster import MultiPartitionKey, build_output_context

from dataenvgym_dagster.asset_names import (
    LABEL_LIMIT,
    SHORT_NAMES,
    iteration_asset_name,
    legacy_asset_name,
    parse_iteration_asset_name,
)
from dataenvgym_dagster.definitions import defs
from dataenvgym_dagster.defs.resources import WAREHOUSE_TABLE, WarehouseIOManager
from dataenvgym_dagster.machinery.warehouse import Warehouse

from .test_warehouse import evaluation_rows


def test_every_loop_key_fits_the_zoomed_out_label_and_says_its_iteration():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        name = key.path[-1]
        group = graph.get(key).group_name
        assert len(name) <= LABEL_LIMIT, f"{name} is cut in the zoomed-out graph"
        if group.startswith("iteration_"):
            assert name.startswith(f"it{group.removeprefix('iteration_')}_"), name


def test_validation_and_test_evaluations_read_differently_and_every_short_name_is_unique():
    assert iteration_asset_name(1, "validation_evaluation") == "it1_val_eval"
    assert iteration_asset_name(1, "test_evaluation") == "it1_test_eval"
    assert len(set(SHORT_NAMES.values())) == len(SHORT_NAMES)
    assert all(len(iteration_asset_name(9, artefact)) <= LABEL_LIMIT for artefact in SHORT_NAMES)


def test_a_key_parses_back_to_its_iteration_and_artefact():
    for artefact in SHORT_NAMES:
        assert parse_iteration_asset_name(iteration_asset_name(12, artefact)) == (12, artefact)
    assert parse_iteration_asset_name("base_student") is None
    assert parse_iteration_asset_name("itx_val_eval") is None
    with pytest.raises(ValueError, match="unknown loop artefact 'evaluation'; artefacts: experiment_config"):
        iteration_asset_name(1, "evaluation")


def test_rows_written_under_an_assets_former_key_are_removed_when_it_is_written_again(tmp_path):
    """A home from before the short names keeps `iteration_1_test_evaluation.parquet`; without removal the
    views would read its rows beside the new file's."""
    warehouse = Warehouse(tmp_path)
    warehouse.write("evaluation_results", ["arithmetic", "e", legacy_asset_name(1, "test_evaluation")], evaluation_rows(6, 1))
    context = build_output_context(
        asset_key=iteration_asset_name(1, "test_evaluation"),
        partition_key=MultiPartitionKey({"domain": "arithmetic", "experiment": "e"}),
        definition_metadata={WAREHOUSE_TABLE: "evaluation_results"},
    )
    WarehouseIOManager(home=str(tmp_path)).handle_output(context, evaluation_rows(4, 1))
    with warehouse.connect() as connection:
        assert connection.execute("SELECT count(*) FROM evaluation_results").fetchone() == (4,)
    files = sorted(path.name for path in (warehouse.tables / "evaluation_results").rglob("*.parquet"))
    assert files == ["_schema.parquet", "it1_test_eval.parquet"]
    assert pl.read_parquet(warehouse.tables / "evaluation_results" / "arithmetic" / "e" / "it1_test_eval.parquet").height == 4
