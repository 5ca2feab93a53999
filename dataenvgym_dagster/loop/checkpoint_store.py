"""Student checkpoints in an object store: published with the manifest last, fetched into a local cache and verified.

With an object store as ``$DATAENVGYM_STORAGE``, a student is still saved into a local folder
(``$DATAENVGYM_HOME/checkpoints/…``, the same relative path as the record's ``path``) and loaded
from one; the store is where other workers find it. An object store writes one object
atomically but never several, so a checkpoint (many files) follows one rule:

**Publishing** (after ``save_pretrained`` and its record, :func:`publish`):

1. delete the checkpoint's ``checkpoint-manifest.json``, then every other object under its
   prefix: from here on the checkpoint is absent, never a mixture of an old and a new one;
2. upload every file of the folder (weights, configs, tokenizer, subfolders), one object each;
3. upload ``checkpoint-manifest.json`` last: each file's name, size and SHA-256, and the record's
   digest.

**A checkpoint without its manifest is absent.** A worker stopped during steps 1–2 leaves no
manifest, and :func:`fetch` refuses it (:class:`IncompleteCheckpointError`) rather than read a
torn checkpoint.

**Fetching** (before a student trains from or evaluates a checkpoint, :func:`fetch`): a local
folder that already verifies against the record (:func:`~dataenvgym_dagster.loop.checkpoints.verify_files`)
is used as it is. Otherwise the manifest is read, its digest must be the record's, every file it
names is downloaded into a hidden folder beside the cache folder and its SHA-256 checked against
the manifest (a corrupted or overwritten object is an error), and the folder is renamed into place.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict

from dataenvgym_dagster.loop.checkpoints import (
    ChecksumMismatchError,
    StudentCheckpoint,
    replace_folder,
    verify_files,
)
from dataenvgym_dagster.machinery.storage import Storage, file_sha256

MANIFEST = "checkpoint-manifest.json"


class IncompleteCheckpointError(FileNotFoundError):
    """A checkpoint in the object store has no manifest: it is absent, or its upload never finished."""


class StoredFile(BaseModel):
    """One object of a published checkpoint: its name inside the folder (``/``-separated), size (bytes) and sha256."""

    model_config = ConfigDict(frozen=True)

    name: str
    size: int
    sha256: str


class StoreManifest(BaseModel):
    """What a published checkpoint holds; uploaded last, so its presence means every file is there."""

    model_config = ConfigDict(frozen=True)

    checkpoint_sha256: str
    """The record's digest (:attr:`StudentCheckpoint.sha256`)."""
    files: tuple[StoredFile, ...]


def _folders(checkpoint: StudentCheckpoint) -> list[StudentCheckpoint]:
    """The checkpoint and the checkpoints it runs on (an adapter's base), those stored as folders."""
    chain = [checkpoint] + (_folders(checkpoint.base) if checkpoint.base is not None else [])
    return [record for record in chain if record.kind != "pretrained"]


def _prefix(checkpoint: StudentCheckpoint) -> tuple[str, ...]:
    if checkpoint.path is None or Path(checkpoint.path).is_absolute():
        raise ValueError(
            f"the {checkpoint.label} records the path {checkpoint.path}; checkpoints record paths relative to the home: re-materialise it"
        )
    return PurePosixPath(Path(checkpoint.path).as_posix()).parts


def publish(checkpoint: StudentCheckpoint, home: Path, store: Storage | None) -> None:
    """Upload the checkpoint's local folder ``home / checkpoint.path`` to ``store``, manifest last.

    Nothing to do without an object store, or for a ``pretrained`` checkpoint (nothing is copied)."""
    if store is None or checkpoint.kind == "pretrained":
        return
    prefix = _prefix(checkpoint)
    directory = home / checkpoint.path
    store.remove(*prefix, MANIFEST)  # first: the checkpoint is absent until the new manifest lands
    store.remove(*prefix, recursive=True)
    hashed = {record.name: record.sha256 for record in checkpoint.files}
    files = []
    for path in sorted(path for path in directory.rglob("*") if path.is_file()):
        name = path.relative_to(directory).as_posix()
        files.append(StoredFile(name=name, size=path.stat().st_size, sha256=hashed.get(name) or file_sha256(path)))
        store.put_file(path, (*prefix, *name.split("/")))
    manifest = StoreManifest(checkpoint_sha256=checkpoint.sha256, files=tuple(files))
    store.write_bytes((*prefix, MANIFEST), manifest.model_dump_json(indent=1).encode())


def fetch(checkpoint: StudentCheckpoint, home: Path, store: Storage | None) -> None:
    """Make the checkpoint (and an adapter's base) present and verified under ``home``, downloading what is not.

    Raises :class:`IncompleteCheckpointError` for a checkpoint without a manifest and
    :class:`~dataenvgym_dagster.loop.checkpoints.ChecksumMismatchError` for an object whose bytes
    are not the manifest's, or a manifest that is not the record's."""
    if store is None:
        return
    for record in _folders(checkpoint):
        directory = home / str(record.path)
        if _verifies(directory, record):
            continue  # the local copy holds exactly the recorded files
        _download(record, directory, store)
        verify_files(directory, record.files, record.label)


def _verifies(directory: Path, record: StudentCheckpoint) -> bool:
    try:
        verify_files(directory, record.files, record.label)
    except (FileNotFoundError, ChecksumMismatchError):
        return False
    return True


def _download(record: StudentCheckpoint, directory: Path, store: Storage) -> None:
    prefix = _prefix(record)
    try:
        manifest = StoreManifest.model_validate_json(store.read_bytes(*prefix, MANIFEST))
    except FileNotFoundError:
        raise IncompleteCheckpointError(
            f"the {record.label} is recorded at {store.url(*prefix)}, but it has no {MANIFEST}: the checkpoint is absent, "
            "or its upload never finished (a worker stopped mid-upload). Refusing to read it; re-materialise it"
        ) from None
    if manifest.checkpoint_sha256 != record.sha256:
        raise ChecksumMismatchError(
            f"the {record.label} at {store.url(*prefix)} is checkpoint {manifest.checkpoint_sha256[:12]}, not the recorded "
            f"{record.sha256[:12]}: it was re-materialised since; re-materialise what depends on it"
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    partial = directory.with_name(f".{directory.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        for stored in manifest.files:
            target = partial.joinpath(*stored.name.split("/"))
            store.get_file((*prefix, *stored.name.split("/")), target)
            actual = file_sha256(target)
            if actual != stored.sha256:
                raise ChecksumMismatchError(
                    f"the {record.label}: {store.url(*prefix, stored.name)} does not match its manifest (sha256 {actual[:12]} != "
                    f"{stored.sha256[:12]}); the object is corrupted or was overwritten: re-materialise the checkpoint"
                )
        # The record's modification times, so that later verifications of this copy need not re-hash it.
        for weight in record.files:
            if (partial / weight.name).is_file():
                os.utime(partial / weight.name, ns=(weight.mtime_ns, weight.mtime_ns))
        if not _verifies(directory, record):  # another worker on this machine may have fetched it meanwhile
            replace_folder(partial, directory)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
