"""Resources: where state lives, the experiment catalogue, and the warehouse IO manager.

Two settings say where state lives: ``$DATAENVGYM_HOME``, a local folder (the Dagster instance
and local caches), and ``$DATAENVGYM_STORAGE``, where the warehouse's Parquet files, the JSON
artefacts and the checkpoints are kept: the home itself by default, or another folder (a shared
mount), or an object store URL (``s3://bucket/prefix``, ``gs://bucket/prefix``).
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import polars as pl
from dagster import ConfigurableIOManager, ConfigurableResource, InputContext, OutputContext
from pydantic import BaseModel

from dataenvgym_dagster.asset_names import legacy_asset_name, parse_iteration_asset_name
from dataenvgym_dagster.defs.partitions import partition_segments
from dataenvgym_dagster.experiments import ExperimentCatalog, load_catalog
from dataenvgym_dagster.machinery.storage import STORAGE_ENV_VAR, Storage, StorageSettingError, is_url, storage_options
from dataenvgym_dagster.machinery.warehouse import Warehouse, WarehouseLockedError

HOME_ENV_VAR = "DATAENVGYM_HOME"
WAREHOUSE_TABLE = "warehouse_table"  # asset metadata: rows of this asset land in that table


def default_home() -> Path:
    """``$DATAENVGYM_HOME``, or ``.dataenvgym`` in the current directory."""
    home = os.environ.get(HOME_ENV_VAR)
    if home and is_url(home):
        raise StorageSettingError(
            f"{HOME_ENV_VAR}={home} is a URL, but the home is a local folder (it holds the Dagster instance and local "
            f"caches); keep {HOME_ENV_VAR} local and set {STORAGE_ENV_VAR}={home} to keep the warehouse, artefacts "
            "and checkpoints there"
        )
    return Path(home or Path.cwd() / ".dataenvgym").absolute()


def default_storage(home: Path | str | None = None) -> str:
    """``$DATAENVGYM_STORAGE`` (a folder or ``s3://`` / ``gs://`` URL), or the home itself."""
    location = os.environ.get(STORAGE_ENV_VAR) or str(home or default_home())
    Storage.at(location)  # a clear error now for an unsupported URL, not in the middle of a run
    return location


def open_storage(location: str | None, home: Path | str) -> Storage:
    """The storage at ``location`` (the home when ``None``), with fsspec options from the environment."""
    if location is None or not is_url(location):
        return Storage.at(location or home)
    return Storage.at(location, storage_options())


def home_warehouse(home: Path | None = None) -> Warehouse:
    """The warehouse of ``home`` (default ``$DATAENVGYM_HOME``) with its tables in ``$DATAENVGYM_STORAGE``."""
    home = home or default_home()
    return Warehouse(home, open_storage(default_storage(home), home))


class TeachingHome(ConfigurableResource):
    """Everything a run reads or writes: local caches under ``home``; checkpoints, artefacts and tables in ``storage``."""

    home: str
    storage: str | None = None
    """A folder or ``s3://`` / ``gs://`` URL; ``None``: the home."""
    experiments_file: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.home)

    def catalog(self) -> ExperimentCatalog:
        return load_catalog(Path(self.experiments_file) if self.experiments_file else None)

    def store(self) -> Storage:
        return open_storage(self.storage, self.home)

    def warehouse(self) -> Warehouse:
        return Warehouse(self.path, self.store())

    @property
    def checkpoint_home(self) -> Path:
        """The local folder checkpoint paths are relative to: the storage folder, or the home's cache of an object store."""
        store = self.store()
        return store.local_path() if store.is_local else self.path

    def object_store(self) -> Storage | None:
        """The object store checkpoints are published to and fetched from; ``None`` for local storage."""
        store = self.store()
        return None if store.is_local else store


class MissingPredecessorError(FileNotFoundError):
    """An asset's input was never materialised for the partition."""


class WarehouseIOManager(ConfigurableIOManager):
    """Stores asset values in ``storage`` (default: under ``home``), by partition.

    * a polars ``DataFrame`` becomes the asset's Parquet file in the warehouse table named by
      the asset's ``warehouse_table`` metadata;
    * a pydantic model becomes a JSON artefact, and, if the asset names a warehouse table, its
      ``warehouse_rows()`` are written there too.

    Each file is written atomically: renamed into place in a folder, one PUT in an object store.
    """

    home: str
    storage: str | None = None

    def _store(self) -> Storage:
        return open_storage(self.storage, self.home)

    def _warehouse(self, context: OutputContext) -> Warehouse:
        warehouse = Warehouse(Path(self.home), self._store())
        try:
            if warehouse.ensure_views():
                context.log.info(f"updated the views in {warehouse.database}")
        except WarehouseLockedError as error:
            context.log.warning(str(error))
        return warehouse

    @staticmethod
    def _json_parts(asset_path: list[str], partition_key: object) -> tuple[str, ...]:
        *folders, name = [*partition_segments(partition_key), *asset_path]
        return ("artifacts", *folders, f"{name}.json")

    @staticmethod
    def _table_key(asset_path: list[str], partition_key: object) -> list[str]:
        return [*partition_segments(partition_key), "__".join(asset_path)]

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        table = context.definition_metadata.get(WAREHOUSE_TABLE)
        asset_path = list(context.asset_key.path)
        if isinstance(obj, pl.DataFrame):
            if table is None:
                raise ValueError(f"{context.asset_key.to_user_string()} returns a table but declares no {WAREHOUSE_TABLE}")
            self._warehouse(context).write(table, self._table_key(asset_path, context.partition_key), obj)
            self._remove_legacy_table_file(table, asset_path, context)
        elif isinstance(obj, BaseModel):
            model = f"{type(obj).__module__}:{type(obj).__qualname__}"
            payload = json.dumps({"model": model, "value": obj.model_dump(mode="json")}, indent=2)
            self._store().write_bytes(self._json_parts(asset_path, context.partition_key), payload.encode())
            if table is not None:
                rows = pl.DataFrame(obj.warehouse_rows())  # type: ignore[attr-defined]
                self._warehouse(context).write(table, self._table_key(asset_path, context.partition_key), rows)
                self._remove_legacy_table_file(table, asset_path, context)
        else:
            raise TypeError(f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; expected a DataFrame or a pydantic model")

    def _remove_legacy_table_file(self, table: str, asset_path: list[str], context: OutputContext) -> None:
        """Rows this asset wrote under its key before the short names (``iteration_1_test_evaluation``)
        would be read twice by the views beside the new file: remove them once the new file is in place."""
        parsed = parse_iteration_asset_name(asset_path[-1])
        if parsed is None:
            return
        legacy = self._table_key([*asset_path[:-1], legacy_asset_name(*parsed)], context.partition_key)
        removed = Warehouse(Path(self.home), self._store()).remove(table, legacy)
        if removed:
            context.log.info(f"removed {removed}, written under this asset's former key {legacy[-1]}")

    def load_input(self, context: InputContext) -> Any:
        asset_path = list(context.asset_key.path)
        partition_key = context.asset_partition_key
        store = self._store()
        artefact = self._json_parts(asset_path, partition_key)
        try:
            try:
                return _load_model(store.read_bytes(*artefact), store.url(*artefact))
            except FileNotFoundError:
                pass
            table = context.upstream_output.definition_metadata[WAREHOUSE_TABLE]
            return Warehouse(Path(self.home), store).read(table, self._table_key(asset_path, partition_key))
        except (FileNotFoundError, KeyError):
            partition = "|".join(partition_segments(partition_key))
            raise MissingPredecessorError(
                f"{context.asset_key.to_user_string()} has not been materialised for partition {partition} "
                f"(under {store.url()}); materialise it first, e.g. run the whole experiment as a backfill"
            ) from None


def _load_model(data: bytes, where: str) -> BaseModel:
    """A pydantic artefact written by ``handle_output``: its class is recorded beside its value."""
    stored = json.loads(data)
    module, _, name = stored["model"].partition(":")
    if not module.startswith("dataenvgym_dagster."):
        raise ValueError(f"{where} names model {stored['model']!r}, which is not one of this project's")
    model = getattr(importlib.import_module(module), name)
    return model.model_validate(stored["value"])
