"""Resources: where state lives, the experiment catalogue, and the warehouse IO manager."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import polars as pl
from dagster import ConfigurableIOManager, ConfigurableResource, InputContext, OutputContext
from pydantic import BaseModel

from dataenvgym_dagster.defs.partitions import partition_segments
from dataenvgym_dagster.experiments import ExperimentCatalog, load_catalog
from dataenvgym_dagster.machinery.warehouse import Warehouse, WarehouseLockedError

HOME_ENV_VAR = "DATAENVGYM_HOME"
WAREHOUSE_TABLE = "warehouse_table"  # asset metadata: rows of this asset land in that table


def default_home() -> Path:
    """``$DATAENVGYM_HOME``, or ``.dataenvgym`` in the current directory."""
    return Path(os.environ.get(HOME_ENV_VAR) or Path.cwd() / ".dataenvgym").absolute()


class TeachingHome(ConfigurableResource):
    """Everything a run reads or writes: checkpoints, artefacts and the warehouse under ``home``."""

    home: str
    experiments_file: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.home)

    def catalog(self) -> ExperimentCatalog:
        return load_catalog(Path(self.experiments_file) if self.experiments_file else None)

    def warehouse(self) -> Warehouse:
        return Warehouse(self.path)


class MissingPredecessorError(FileNotFoundError):
    """An asset's input was never materialised for the partition."""


class WarehouseIOManager(ConfigurableIOManager):
    """Stores asset values under ``home``, by partition.

    * a polars ``DataFrame`` becomes the asset's Parquet file in the warehouse table named by
      the asset's ``warehouse_table`` metadata;
    * a pydantic model becomes a JSON artefact, and, if the asset names a warehouse table, its
      ``warehouse_rows()`` are written there too.
    """

    home: str

    def _warehouse(self, context: OutputContext) -> Warehouse:
        warehouse = Warehouse(Path(self.home))
        try:
            if warehouse.ensure_views():
                context.log.info(f"updated the views in {warehouse.database}")
        except WarehouseLockedError as error:
            context.log.warning(str(error))
        return warehouse

    def _json_path(self, asset_path: list[str], partition_key: object) -> Path:
        return Path(self.home, "artifacts", *partition_segments(partition_key), *asset_path).with_suffix(".json")

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
        elif isinstance(obj, BaseModel):
            path = self._json_path(asset_path, context.partition_key)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".json.tmp")
            model = f"{type(obj).__module__}:{type(obj).__qualname__}"
            temporary.write_text(json.dumps({"model": model, "value": obj.model_dump(mode="json")}, indent=2))
            os.replace(temporary, path)
            if table is not None:
                rows = pl.DataFrame(obj.warehouse_rows())  # type: ignore[attr-defined]
                self._warehouse(context).write(table, self._table_key(asset_path, context.partition_key), rows)
        else:
            raise TypeError(f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; expected a DataFrame or a pydantic model")

    def load_input(self, context: InputContext) -> Any:
        asset_path = list(context.asset_key.path)
        partition_key = context.asset_partition_key
        artefact = self._json_path(asset_path, partition_key)
        try:
            if artefact.exists():
                return _load_model(artefact)
            table = context.upstream_output.definition_metadata[WAREHOUSE_TABLE]
            return Warehouse(Path(self.home)).read(table, self._table_key(asset_path, partition_key))
        except (FileNotFoundError, KeyError):
            partition = "|".join(partition_segments(partition_key))
            raise MissingPredecessorError(
                f"{context.asset_key.to_user_string()} has not been materialised for partition {partition} "
                f"(under {self.home}); materialise it first, e.g. run the whole experiment as a backfill"
            ) from None


def _load_model(path: Path) -> BaseModel:
    """A pydantic artefact written by ``handle_output``: its class is recorded beside its value."""
    stored = json.loads(path.read_text())
    module, _, name = stored["model"].partition(":")
    if not module.startswith("dataenvgym_dagster."):
        raise ValueError(f"{path} names model {stored['model']!r}, which is not one of this project's")
    model = getattr(importlib.import_module(module), name)
    return model.model_validate(stored["value"])
