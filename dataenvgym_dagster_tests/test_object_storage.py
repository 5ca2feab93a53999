"""The warehouse, artefacts and checkpoints in an object store: the micro experiment on S3 (moto), checks on GCS.

The experiment runs through Dagster with ``storage=s3://…`` and a local home; a second "worker"
with an empty home of its own then reads what the first one published.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from dagster import DagsterInstance

from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.defs.resources import TeachingHome, default_home, default_storage, open_storage
from dataenvgym_dagster.experiments import load_catalog
from dataenvgym_dagster.loop.checkpoint_store import MANIFEST, IncompleteCheckpointError, StoreManifest, fetch, publish
from dataenvgym_dagster.loop.checkpoints import WEIGHTS_FILE, ChecksumMismatchError, StudentCheckpoint
from dataenvgym_dagster.machinery.storage import Storage, StorageSettingError
from dataenvgym_dagster.machinery.warehouse import Warehouse

from .conftest import Workspace, write_catalog
from .object_stores import environment, gcs_server, s3_server

pytestmark = pytest.mark.slow

BUCKET = "dataenvgym"
EVALUATIONS = (
    "SELECT iteration, split, example_id, prediction, correct, answer_loss, checkpoint_sha256 "
    "FROM evaluation_results WHERE experiment = 'skill_list' ORDER BY ALL"
)
GENERATED = "SELECT iteration, example_id, question, answer, passed_quality_checks FROM generated_examples WHERE experiment = 'skill_list' ORDER BY ALL"
LINEAGE = (
    "SELECT iteration, checkpoint, checkpoint_sha256, source_kind, source, examples FROM lineage "
    "WHERE experiment = 'skill_list' ORDER BY ALL"
)
# Other tests add experiments to the shared local run (``completed``): compare skill_list only.
CURVE = "SELECT iteration, accuracy, answer_loss FROM accuracy_by_iteration WHERE split = 'test' AND experiment = 'skill_list' ORDER BY iteration"
CHECKPOINT_2 = ("checkpoints", "arithmetic", "skill_list", "iteration_2")


def artefact(iteration: int, name: str) -> tuple[str, ...]:
    """Where the IO manager keeps a skill_list iteration asset's JSON artefact, relative to the storage root."""
    *folders, last = iteration_key(iteration, name).path
    return ("artifacts", "arithmetic", "skill_list", *folders, f"{last}.json")


def table_file(table: str, iteration: int, name: str) -> str:
    """The Parquet object of a skill_list iteration asset's table rows, relative to the storage root."""
    return f"warehouse/{table}/arithmetic/skill_list/{'__'.join(iteration_key(iteration, name).path)}.parquet"


def recorded_checkpoint(store: Storage, iteration: int) -> StudentCheckpoint:
    return StudentCheckpoint.model_validate(json.loads(store.read_bytes(*artefact(iteration, "student_checkpoint")))["value"])


def storage_workspace(root: Path, storage: str) -> Workspace:
    """The micro catalogue with a local home under ``root`` and its data in ``storage``."""
    root.mkdir(parents=True, exist_ok=True)
    catalog_file = root / "experiments.yaml"
    if not catalog_file.exists():
        write_catalog(catalog_file)
    catalog = load_catalog(catalog_file)
    home = root / "home"
    defs = build_definitions(catalog, str(home), catalog_file, storage=storage)
    return Workspace(home, catalog, defs, DagsterInstance.ephemeral())


def query(warehouse: Warehouse, sql: str) -> pl.DataFrame:
    with warehouse.connect() as connection:
        return connection.sql(sql).pl()


def failure_message(result) -> str:
    failures = [event for event in result.all_events if event.is_failure]
    return "\n".join(str(event.event_specific_data.error) for event in failures if event.event_specific_data)


@pytest.fixture(scope="module")
def s3():
    with s3_server(BUCKET) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def on_s3(s3, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The micro ``skill_list`` experiment run to completion with its data in ``s3://dataenvgym/runs``."""
    workspace = storage_workspace(tmp_path_factory.mktemp("s3_worker"), f"s3://{BUCKET}/runs")
    workspace.run_foundations()
    assert workspace.run_loop().success
    return workspace


def store_of(workspace: Workspace) -> Storage:
    return workspace.defs.resources["teaching"].store()


def evaluate_iteration_2_on_a_fresh_worker(on_s3: Workspace, root: Path):
    """Materialise only iteration_2's test evaluation from a new, empty local home (another machine)."""
    worker = storage_workspace(root, store_of(on_s3).root)
    result = worker.run_loop(asset_selection=[iteration_key(2, "test_evaluation")], raise_on_error=False)
    return worker, result


# -- the micro experiment on S3 -------------------------------------------------------------------------
def test_the_warehouse_on_s3_holds_the_same_rows_as_the_local_run(on_s3, completed):
    warehouse = on_s3.defs.resources["teaching"].warehouse()
    assert warehouse.storage.root == f"s3://{BUCKET}/runs"
    local = Warehouse(completed.home)
    for sql in (EVALUATIONS, GENERATED, LINEAGE):
        assert query(warehouse, sql).equals(query(local, sql)), sql
    assert len(query(warehouse, EVALUATIONS)) == 3 * 2 * 48


def test_tables_artefacts_and_checkpoints_live_in_the_bucket_and_only_caches_in_the_home(on_s3):
    store = store_of(on_s3)
    objects = {"/".join(parts) for parts in store.glob("**")}
    assert table_file("evaluation_results", 2, "test_evaluation") in objects
    assert "/".join(artefact(2, "student_checkpoint")) in objects
    assert f"{'/'.join(CHECKPOINT_2)}/{WEIGHTS_FILE}" in objects
    assert f"{'/'.join(CHECKPOINT_2)}/{MANIFEST}" in objects
    assert not [name for name in objects if name.endswith(".tmp") or ".partial" in name]
    # The home keeps the views file and the checkpoints it trained (a cache); no tables or artefacts.
    assert (on_s3.home / "warehouse.duckdb").exists()
    assert not (on_s3.home / "warehouse").exists() and not (on_s3.home / "artifacts").exists()
    assert (on_s3.home.joinpath(*CHECKPOINT_2) / WEIGHTS_FILE).exists()


def test_the_manifest_lists_every_object_of_the_checkpoint_with_its_sha256(on_s3):
    store = store_of(on_s3)
    manifest = StoreManifest.model_validate_json(store.read_bytes(*CHECKPOINT_2, MANIFEST))
    assert manifest.checkpoint_sha256 == recorded_checkpoint(store, 2).sha256
    listed = {stored.name for stored in manifest.files}
    present = {"/".join(parts[len(CHECKPOINT_2):]) for parts in store.glob(*CHECKPOINT_2, "**")}
    assert listed == present - {MANIFEST}
    assert {WEIGHTS_FILE, "config.json", "tokenizer.json"} <= listed


def test_the_views_are_the_local_ones_over_the_bucket_and_answer_sql(on_s3, completed):
    warehouse = on_s3.defs.resources["teaching"].warehouse()
    local = Warehouse(completed.home)
    assert [s.replace(f"s3://{BUCKET}/runs", "ROOT") for s in warehouse.view_statements()] == [
        s.replace(str(completed.home), "ROOT") for s in local.view_statements()
    ]
    curve = query(warehouse, CURVE)
    assert curve["iteration"].to_list() == [0, 1, 2]
    assert curve.equals(query(local, CURVE))
    with warehouse.connect(under=["arithmetic", "skill_list"]) as connection:  # one experiment's objects, listed in the bucket
        assert connection.sql(CURVE).pl().equals(curve)
    # warehouse.duckdb itself, opened read-only as a user would, reads the bucket once the filesystem is registered.
    with duckdb.connect(str(warehouse.database), read_only=True) as connection:
        connection.register_filesystem(warehouse.storage.fs)
        assert connection.execute("SELECT count(*) FROM skill_accuracy").fetchone()[0] > 0


def test_a_fresh_worker_fetches_the_checkpoint_from_the_bucket_and_evaluates_it_the_same(on_s3, tmp_path):
    worker, result = evaluate_iteration_2_on_a_fresh_worker(on_s3, tmp_path)
    assert result.success, failure_message(result)
    fetched = worker.home.joinpath(*CHECKPOINT_2)
    assert (fetched / WEIGHTS_FILE).read_bytes() == (on_s3.home.joinpath(*CHECKPOINT_2) / WEIGHTS_FILE).read_bytes()
    # The base student's folder came along only if needed; iteration_2 is a whole model, so it did not.
    assert not worker.home.joinpath("checkpoints", "arithmetic", "base").exists()
    sql = EVALUATIONS.replace("ORDER BY", "AND iteration = 2 AND split = 'test' ORDER BY")
    assert len(query(worker.defs.resources["teaching"].warehouse(), sql)) == 48


def test_a_checkpoint_whose_manifest_is_missing_is_refused(on_s3, tmp_path):
    store = store_of(on_s3)
    manifest = store.read_bytes(*CHECKPOINT_2, MANIFEST)
    store.remove(*CHECKPOINT_2, MANIFEST)
    try:
        _, result = evaluate_iteration_2_on_a_fresh_worker(on_s3, tmp_path)
    finally:
        store.write_bytes((*CHECKPOINT_2, MANIFEST), manifest)
    assert not result.success
    message = failure_message(result)
    assert "iteration_2 student for arithmetic|skill_list" in message
    assert f"has no {MANIFEST}" in message and "upload never finished" in message
    assert not tmp_path.joinpath("home", *CHECKPOINT_2).exists()  # nothing was downloaded for use


def test_a_corrupted_weight_object_is_detected(on_s3, tmp_path):
    store = store_of(on_s3)
    weights = (*CHECKPOINT_2, WEIGHTS_FILE)
    original = store.read_bytes(*weights)
    store.write_bytes(weights, original[:-8] + bytes(8))  # same size, different bytes
    try:
        _, result = evaluate_iteration_2_on_a_fresh_worker(on_s3, tmp_path)
    finally:
        store.write_bytes(weights, original)
    assert not result.success
    message = failure_message(result)
    assert f"s3://{BUCKET}/runs/checkpoints/arithmetic/skill_list/iteration_2/{WEIGHTS_FILE} does not match its manifest" in message
    assert not tmp_path.joinpath("home", *CHECKPOINT_2).exists()


class StopsAfter(Storage):
    """An object store whose worker dies after ``uploads`` objects of a publish (the process is gone, nothing else)."""

    uploads = 0

    def put_file(self, source: Path, parts: tuple[str, ...]) -> None:
        if StopsAfter.uploads == 0:
            raise KeyboardInterrupt("worker stopped mid-upload")
        StopsAfter.uploads -= 1
        super().put_file(source, parts)


def test_a_checkpoint_torn_mid_upload_is_absent_not_read(on_s3, tmp_path):
    record = recorded_checkpoint(store_of(on_s3), 1)
    torn = StopsAfter(f"s3://{BUCKET}/torn")
    StopsAfter.uploads = 1  # the first object (a weight file) lands, then the worker is gone
    with pytest.raises(KeyboardInterrupt):
        publish(record, on_s3.home, torn)
    assert torn.glob("**") and not torn.exists(*Path(str(record.path)).parts, MANIFEST)
    with pytest.raises(IncompleteCheckpointError, match="upload never finished"):
        fetch(record, tmp_path, Storage.at(f"s3://{BUCKET}/torn"))
    # Published whole, the same checkpoint is fetched and verifies.
    whole = Storage.at(f"s3://{BUCKET}/whole")
    publish(record, on_s3.home, whole)
    fetch(record, tmp_path, whole)
    assert (tmp_path / str(record.path) / WEIGHTS_FILE).read_bytes() == (on_s3.home / str(record.path) / WEIGHTS_FILE).read_bytes()


def test_a_checkpoint_replaced_in_the_bucket_is_not_taken_for_the_recorded_one(on_s3, tmp_path):
    store = Storage.at(f"s3://{BUCKET}/replaced")
    first, second = recorded_checkpoint(store_of(on_s3), 1), recorded_checkpoint(store_of(on_s3), 2)
    publish(first, on_s3.home, store)
    impostor = first.model_copy(update={"sha256": second.sha256})
    with pytest.raises(ChecksumMismatchError, match="was re-materialised since"):
        fetch(impostor, tmp_path, store)


# -- settings -------------------------------------------------------------------------------------------
def test_storage_settings_name_what_is_wrong_and_what_to_do(monkeypatch):
    with pytest.raises(StorageSettingError, match=r"ftp://, which is not supported; use a local folder, s3://bucket/prefix or gs://"):
        Storage.at("ftp://host/x")
    with pytest.raises(StorageSettingError, match="names no bucket"):
        Storage.at("s3://")
    monkeypatch.setenv("DATAENVGYM_HOME", "s3://bucket/home")
    with pytest.raises(StorageSettingError, match="set DATAENVGYM_STORAGE=s3://bucket/home"):
        default_home()
    monkeypatch.setenv("DATAENVGYM_STORAGE", "gs://bucket/runs")
    assert default_storage("/tmp/home") == "gs://bucket/runs"
    monkeypatch.setenv("DATAENVGYM_STORAGE_OPTIONS", "[1]")
    with pytest.raises(StorageSettingError, match="must be a JSON object of fsspec options"):
        open_storage("gs://bucket/runs", "/tmp/home")


def test_a_local_storage_keeps_everything_under_it_as_before(tmp_path):
    store = open_storage(None, tmp_path)
    assert store.is_local and store.root == str(tmp_path)
    assert Warehouse(tmp_path).view_statements() == Warehouse(tmp_path, store).view_statements()
    assert f"read_parquet('{tmp_path}/warehouse/evaluation_results/**/*.parquet'" in Warehouse(tmp_path).view_statements()[2]


def test_a_shared_folder_as_storage_keeps_tables_artefacts_and_checkpoints_there_and_caches_in_the_home(tmp_path):
    teaching = TeachingHome(home=str(tmp_path / "home"), storage=str(tmp_path / "shared"))
    assert teaching.object_store() is None  # a folder: checkpoints are written there directly, nothing to publish
    assert teaching.checkpoint_home == tmp_path / "shared"
    assert teaching.warehouse().tables == tmp_path / "shared" / "warehouse"
    assert teaching.warehouse().database == tmp_path / "home" / "warehouse.duckdb"


# -- GCS (gs://) through gcsfs, against a local emulator of its JSON API ------------------------------------
def test_gcs_storage_holds_tables_views_and_checkpoints(completed, tmp_path):
    with gcs_server(BUCKET), environment(DATAENVGYM_STORAGE_OPTIONS='{"token": "anon"}'):
        store = open_storage(f"gs://{BUCKET}/runs", tmp_path)
        assert type(store.fs).__module__.startswith("gcsfs")
        warehouse = Warehouse(tmp_path / "home", store)
        local = Warehouse(completed.home)
        evaluation_key = ["arithmetic", "skill_list", "__".join(iteration_key(2, "test_evaluation").path)]
        for key in (evaluation_key, ["arithmetic", "benchmark_splits"]):
            table = "evaluation_results" if "skill_list" in key else "benchmark_problems"
            assert warehouse.write(table, key, local.read(table, key)) == f"gs://{BUCKET}/runs/warehouse/{table}/{'/'.join(key)}.parquet"
        warehouse.ensure_views()
        assert query(warehouse, "SELECT count(*) AS n FROM evaluation_results")["n"][0] == 48
        assert query(warehouse, "SELECT count(*) AS n FROM accuracy_by_iteration")["n"][0] == 1
        assert warehouse.damaged_files() == []

        record = recorded_checkpoint(Storage.at(completed.home), 2)
        publish(record, completed.home, store)
        fetch(record, tmp_path / "worker", store)
        assert (tmp_path / "worker" / str(record.path) / WEIGHTS_FILE).read_bytes() == (completed.home / str(record.path) / WEIGHTS_FILE).read_bytes()
        store.remove(*Path(str(record.path)).parts, MANIFEST)
        with pytest.raises(IncompleteCheckpointError):
            fetch(record, tmp_path / "another_worker", store)
