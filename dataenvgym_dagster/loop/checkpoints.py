"""Student checkpoints: folders under the home, recorded with a manifest of their weight files.

A checkpoint is one of three kinds:

* ``model``: a whole model saved by ``save_pretrained`` (the tiny base student, full fine-tuning),
  single-file or sharded (``model-0000x-of-0000y.safetensors`` + ``model.safetensors.index.json``);
* ``adapter``: a PEFT LoRA adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``)
  and the checkpoint it applies to (``base``);
* ``pretrained``: a model named by hub id or by a local ``save_pretrained`` folder, with its
  revision; nothing is copied into the home.

Paths of folders inside the home are stored relative to it, so a copied or moved home verifies
and reads its own files, never the original's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from dataenvgym_dagster.machinery.storage import file_sha256
from dataenvgym_dagster.machinery.student.backend import StudentWeights

# Files whose bytes decide what the model computes. Tokenizer files are saved alongside but not hashed.
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json", "config.json", "adapter_config.json")
WEIGHTS_FILE = "model.safetensors"  # the single-file layout; sharded and adapter layouts have other names


class ChecksumMismatchError(ValueError):
    """A checkpoint's files are not the ones recorded when it was materialised."""


class WeightFile(BaseModel):
    """One file of a checkpoint: its name inside the folder, size (bytes), sha256 and modification time (ns)."""

    model_config = ConfigDict(frozen=True)

    name: str
    size: int
    sha256: str
    mtime_ns: int


class StudentCheckpoint(BaseModel):
    """A saved student and what it is; evaluation refuses it if its files changed since."""

    model_config = ConfigDict(frozen=True)

    domain: str
    experiment: str | None = None
    iteration: int | None = None
    kind: Literal["model", "adapter", "pretrained"] = "model"
    path: str | None = None
    """The folder, relative to the home (``model`` and ``adapter``)."""
    model: str | None = None
    """``pretrained`` only: the hub id or local folder given as ``student.model``."""
    revision: str | None = None
    base: StudentCheckpoint | None = None
    """``adapter`` only: the checkpoint the adapter applies to (a ``model`` or ``pretrained`` one)."""
    files: tuple[WeightFile, ...] = ()
    sha256: str
    """One digest of the manifest (file names and their sha256): what evaluation rows record."""

    @property
    def label(self) -> str:
        if self.experiment is None:
            return f"base student for {self.domain}"
        return f"iteration_{self.iteration} student for {self.domain}|{self.experiment}"

    @property
    def reference(self) -> str:
        """Where the checkpoint is, as lineage rows record it: a home-relative folder or ``model@revision``."""
        if self.kind == "pretrained":
            return f"{self.model}@{self.revision or 'main'}"
        return str(self.path)

    @property
    def base_model(self) -> StudentCheckpoint:
        """The checkpoint holding the full weights this one runs on (itself unless it is an adapter)."""
        return self.base.base_model if self.kind == "adapter" and self.base is not None else self


def checkpoint_dir(home: Path, domain: str, experiment: str | None = None, iteration: int | None = None) -> Path:
    """Where a checkpoint lives: ``checkpoints/<domain>/base`` or ``.../<experiment>/iteration_<t>``."""
    if experiment is None:
        return home / "checkpoints" / domain / "base"
    return home / "checkpoints" / domain / experiment / f"iteration_{iteration}"


def weight_files(directory: Path) -> list[Path]:
    """Every weight, index and config file of a saved model or adapter folder, sorted by name."""
    found = sorted({path for pattern in WEIGHT_PATTERNS for path in directory.glob(pattern) if path.is_file()})
    if not any(path.suffix in {".safetensors", ".bin"} for path in found):
        raise FileNotFoundError(
            f"{directory} holds no weights (*.safetensors or *.bin); expected a save_pretrained model or a PEFT adapter folder"
        )
    return found


def manifest(directory: Path) -> tuple[WeightFile, ...]:
    """Size, sha256 and mtime of every weight file in ``directory`` (hashes every byte once)."""
    records = []
    for path in weight_files(directory):
        stat = path.stat()
        records.append(WeightFile(name=path.name, size=stat.st_size, sha256=file_sha256(path), mtime_ns=stat.st_mtime_ns))
    return tuple(records)


def manifest_digest(files: tuple[WeightFile, ...], *extra: str | None) -> str:
    """One sha256 over the file names and their hashes (and any ``extra`` identity, e.g. the base's digest)."""
    payload = json.dumps([[f.name, f.sha256] for f in files] + [list(extra)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def relative_to_home(home: Path, directory: Path) -> str:
    """``directory`` as stored in a checkpoint record: relative to ``home``, which must contain it."""
    try:
        return str(directory.absolute().relative_to(home.absolute()))
    except ValueError:
        raise ValueError(f"checkpoint folder {directory} is not inside the home {home}; checkpoints are written under the home") from None


def folder_checkpoint(
    home: Path,
    directory: Path,
    *,
    domain: str,
    experiment: str | None = None,
    iteration: int | None = None,
    base: StudentCheckpoint | None = None,
) -> StudentCheckpoint:
    """The record of a folder just written by ``save_pretrained``: an adapter if ``base`` is given, else a whole model."""
    files = manifest(directory)
    return StudentCheckpoint(
        domain=domain, experiment=experiment, iteration=iteration, kind="adapter" if base is not None else "model",
        path=relative_to_home(home, directory), base=base, files=files,
        sha256=manifest_digest(files, base.sha256 if base is not None else None),
    )


def pretrained_checkpoint(model: str, revision: str | None, *, domain: str) -> StudentCheckpoint:
    """The record of a hub model or local folder used as it is. A local folder's weights are recorded too."""
    local = Path(model)
    files = manifest(local) if local.is_dir() else ()
    return StudentCheckpoint(
        domain=domain, kind="pretrained", model=model, revision=revision, files=files,
        sha256=manifest_digest(files, model, revision),
    )


def replace_folder(partial: Path, directory: Path) -> None:
    """Move the complete folder ``partial`` to ``directory``, replacing what is there.

    A folder cannot be replaced in one rename, so an existing one is first moved aside: a reader
    finds the old folder, the new one, or none (which it reports), never a mixture."""
    if directory.exists():
        old = partial.with_suffix(".old")
        os.replace(directory, old)
        os.replace(partial, directory)
        shutil.rmtree(old)
    else:
        os.replace(partial, directory)


def verify_files(directory: Path, files: tuple[WeightFile, ...], label: str) -> None:
    """Check that ``directory`` holds exactly the recorded weight files, unchanged.

    The rule, so that reading a multi-gigabyte checkpoint does not re-hash it every time: a file
    whose size and modification time (ns) both equal the manifest's is taken as unchanged; a file
    whose size differs is changed; a file whose size is equal but whose mtime differs (a copy
    without ``cp -a``, a ``touch``, or an edit in place) is hashed again and compared with the
    recorded sha256. Missing files, and weight files not in the manifest, are errors. Sharded
    checkpoints must also hold every shard their index names.
    """
    if not directory.is_dir():
        raise FileNotFoundError(f"the {label} is recorded at {directory}, but that folder does not exist; re-materialise it")
    recorded = {f.name: f for f in files}
    present = {path.name: path for path in weight_files(directory)}
    missing, unexpected = sorted(set(recorded) - set(present)), sorted(set(present) - set(recorded))
    if missing or unexpected:
        raise ChecksumMismatchError(
            f"the {label} at {directory} has changed since it was materialised (missing {missing}, unrecorded {unexpected}); "
            "re-materialise it and what depends on it rather than evaluating a different model"
        )
    for name, record in recorded.items():
        stat = present[name].stat()
        if stat.st_size == record.size and stat.st_mtime_ns == record.mtime_ns:
            continue
        actual = file_sha256(present[name]) if stat.st_size == record.size else f"size {stat.st_size} != {record.size}"
        if actual != record.sha256:
            raise ChecksumMismatchError(
                f"the {label} at {directory} has changed since it was materialised: {name} "
                f"(sha256 {actual[:12]} != recorded {record.sha256[:12]}); re-materialise it and what depends on it "
                "rather than evaluating a different model"
            )
    for index in (name for name in recorded if name.endswith(".index.json")):
        shards = set(json.loads((directory / index).read_text()).get("weight_map", {}).values())
        if shards - set(recorded):
            raise ChecksumMismatchError(f"the {label} at {directory}: {index} names shards {sorted(shards - set(recorded))} that are missing")


def verified_path(checkpoint: StudentCheckpoint, home: Path) -> Path:
    """The checkpoint's folder under ``home``, after checking that its files are the ones recorded."""
    if checkpoint.kind == "pretrained":
        raise ValueError(f"the {checkpoint.label} is {checkpoint.reference}, not a folder under the home")
    if checkpoint.path is None or Path(checkpoint.path).is_absolute():
        raise ValueError(
            f"the {checkpoint.label} records the absolute path {checkpoint.path}; checkpoints record paths relative to "
            "the home: re-materialise it"
        )
    directory = home / checkpoint.path
    verify_files(directory, checkpoint.files, checkpoint.label)
    return directory


def student_weights(checkpoint: StudentCheckpoint, home: Path) -> StudentWeights:
    """Where the checkpoint's weights are, for a student backend, after verifying every folder involved.

    A hub model is used as named (``from_pretrained`` checks its revision); a local folder named
    as ``student.model`` is verified against the manifest recorded when the base was materialised.
    """
    if checkpoint.kind == "pretrained":
        if not checkpoint.files:  # a hub id: from_pretrained checks its revision
            return StudentWeights(model=str(checkpoint.model), revision=checkpoint.revision)
        verify_files(Path(str(checkpoint.model)), checkpoint.files, checkpoint.label)
        return StudentWeights(model=str(checkpoint.model), revision=checkpoint.revision, digest=checkpoint.sha256)
    directory = verified_path(checkpoint, home)
    if checkpoint.kind == "model":
        return StudentWeights(model=str(directory), digest=checkpoint.sha256)
    if checkpoint.base is None:
        raise ValueError(f"the {checkpoint.label} is an adapter without a recorded base model; re-materialise it")
    base = student_weights(checkpoint.base, home)
    return StudentWeights(model=base.model, revision=base.revision, adapter=directory, digest=checkpoint.sha256)
