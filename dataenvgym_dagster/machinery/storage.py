"""Where the loop's durable data lives: a local folder, or an object store (``s3://``, ``gs://``) through fsspec.

The warehouse's Parquet files, the IO manager's JSON artefacts and the student checkpoints are
stored here; the Dagster instance and the local caches (teacher replies, rendered images, plots,
downloaded checkpoints) stay in ``$DATAENVGYM_HOME`` on the local disk.

A write is atomic per object on every backend, so a reader sees the old bytes or the new ones:

* a local folder (also NFS or a mounted volume): the bytes are written under a hidden temporary
  name in the final folder and renamed into place (one ``rename``, atomic on POSIX);
* an object store: each object is one complete upload (a single PUT, or a multipart upload, which
  becomes visible only when it completes); an object is never visible half-written, so there is
  no temporary name. Several objects together (a checkpoint) are not atomic: see
  :mod:`dataenvgym_dagster.loop.checkpoint_store` for the manifest-last rule that makes them so.

Credentials are the store's standard ones, read by its library: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_PROFILE`` / ``AWS_ENDPOINT_URL`` (botocore, for s3fs) and
``GOOGLE_APPLICATION_CREDENTIALS`` / ``STORAGE_EMULATOR_HOST`` (gcsfs). Further fsspec options
may be given as JSON in ``$DATAENVGYM_STORAGE_OPTIONS``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any

STORAGE_ENV_VAR = "DATAENVGYM_STORAGE"
OPTIONS_ENV_VAR = "DATAENVGYM_STORAGE_OPTIONS"
# URL schemes this project supports, and the fsspec implementation (PyPI package) each needs.
OBJECT_STORES = {"s3": "s3fs", "gs": "gcsfs"}


class StorageSettingError(ValueError):
    """A storage location or its options cannot be used."""


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` names a URL (``scheme://…``) rather than a local path."""
    return "://" in str(location)


@dataclass(frozen=True)
class Storage:
    """A root (local folder or object-store URL) and the files under it, addressed by relative parts."""

    root: str
    """An absolute local folder, or ``s3://bucket/prefix`` / ``gs://bucket/prefix`` without a trailing slash."""
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """fsspec options for an object store (e.g. ``endpoint_url``); none for a local folder."""

    @classmethod
    def at(cls, location: str | os.PathLike[str], options: dict[str, Any] | None = None) -> Storage:
        """The storage at a local path or an ``s3://`` / ``gs://`` URL; a clear error for anything else."""
        text = str(location)
        if not is_url(text):
            return cls(str(Path(text).absolute()))
        scheme, _, rest = text.partition("://")
        if scheme not in OBJECT_STORES:
            raise StorageSettingError(
                f"storage {text!r} uses {scheme}://, which is not supported; use a local folder, "
                f"{' or '.join(f'{s}://bucket/prefix' for s in OBJECT_STORES)}"
            )
        bucket = rest.strip("/")
        if not bucket:
            raise StorageSettingError(f"storage {text!r} names no bucket; use {scheme}://bucket or {scheme}://bucket/prefix")
        return cls(f"{scheme}://{bucket}", dict(options or {}))

    @property
    def is_local(self) -> bool:
        return not is_url(self.root)

    @property
    def protocol(self) -> str:
        return self.root.partition("://")[0] if not self.is_local else "file"

    @cached_property
    def fs(self) -> Any:
        """The fsspec filesystem (``s3fs`` / ``gcsfs`` for object stores).

        Listings are never cached, so every glob sees what other workers wrote since."""
        import fsspec

        if self.is_local:
            return fsspec.filesystem("file")
        try:
            return fsspec.filesystem(self.protocol, use_listings_cache=False, **self.options)
        except ImportError as error:
            raise StorageSettingError(
                f"storage {self.root} needs the {OBJECT_STORES[self.protocol]} package ({error}); "
                "install the project with its `storage` extra: pip install -e '.[storage]'"
            ) from None

    def query_fs(self) -> Any:
        """A filesystem for DuckDB to read the tables through, with a fresh listing cache.

        DuckDB asks for each file's size and time after listing a glob; served from the listing
        (kept 10 s), that is one request per folder instead of one per file. Each call starts
        from an empty cache, so a new connection sees every file written before it."""
        import fsspec

        if self.is_local:
            return self.fs
        return fsspec.filesystem(self.protocol, skip_instance_cache=True, listings_expiry_time=10, **self.options)

    # -- names -----------------------------------------------------------------------------------
    def url(self, *parts: str) -> str:
        """The full name of ``parts`` under the root: a local path or ``s3://bucket/prefix/a/b``."""
        return "/".join([self.root.rstrip("/"), *parts]) if parts else self.root

    def local_path(self, *parts: str) -> Path:
        """``parts`` under a local root (an error for an object store, whose objects are not files here)."""
        if not self.is_local:
            raise ValueError(f"{self.url(*parts)} is in an object store, not a local file")
        return Path(self.root, *parts)

    def _key(self, *parts: str) -> str:
        """What fsspec calls the object: the URL without ``scheme://`` (a local path is itself)."""
        return self.url(*parts).partition("://")[2] if not self.is_local else self.url(*parts)

    # -- reading ---------------------------------------------------------------------------------
    def exists(self, *parts: str) -> bool:
        return bool(self.fs.exists(self._key(*parts)))

    def read_bytes(self, *parts: str) -> bytes:
        """The object's bytes; ``FileNotFoundError`` if there is none."""
        return bytes(self.fs.cat_file(self._key(*parts)))

    def open(self, *parts: str) -> IO[bytes]:
        return self.fs.open(self._key(*parts), "rb")

    def size(self, *parts: str) -> int:
        return int(self.fs.size(self._key(*parts)))

    def glob(self, *pattern: str) -> list[tuple[str, ...]]:
        """Relative parts of every file (object) matching the pattern (``**`` spans folders), sorted."""
        root = self._key()
        found = self.fs.glob(self._key(*pattern), detail=True)
        return sorted(tuple(name[len(root):].strip("/").split("/")) for name, info in found.items() if info["type"] == "file")

    def get_file(self, parts: tuple[str, ...], destination: Path) -> None:
        """Copy the object to a local file."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        self.fs.get_file(self._key(*parts), str(destination))

    # -- writing ---------------------------------------------------------------------------------
    def write_bytes(self, parts: tuple[str, ...], data: bytes) -> None:
        """Replace the object with ``data``, atomically (rename locally, one PUT in an object store)."""
        if self.is_local:
            replace_file(self.local_path(*parts), data)
        else:
            self.fs.pipe_file(self._key(*parts), data)

    def put_file(self, source: Path, parts: tuple[str, ...]) -> None:
        """Replace the object with a complete local file, atomically (copy + rename, or one upload)."""
        if self.is_local:
            _replace(self.local_path(*parts), lambda temporary: shutil.copyfile(source, temporary))
        else:
            self.fs.put_file(str(source), self._key(*parts))

    def remove(self, *parts: str, recursive: bool = False) -> None:
        """Delete the object (or everything under a prefix); nothing if it does not exist."""
        key = self._key(*parts)
        if self.fs.exists(key):
            self.fs.rm(key, recursive=recursive)


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to the local file ``path`` atomically: readers see the old file or the new one, never part of it."""
    _replace(path, lambda temporary: temporary.write_bytes(data))


def _replace(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` a hidden temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = hidden_temporary(path)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def hidden_temporary(path: Path) -> Path:
    """A unique name beside ``path`` that no reader's glob (``*.parquet``, ``*.json``) matches."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


def storage_options(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """fsspec options from ``$DATAENVGYM_STORAGE_OPTIONS`` (a JSON object), or none."""
    raw = (os.environ if environ is None else environ).get(OPTIONS_ENV_VAR, "").strip()
    if not raw:
        return {}
    try:
        options = json.loads(raw)
    except json.JSONDecodeError as error:
        raise StorageSettingError(f"{OPTIONS_ENV_VAR} is not JSON ({error}); give an object, e.g. '{{\"endpoint_url\": \"http://minio:9000\"}}'") from None
    if not isinstance(options, dict):
        raise StorageSettingError(f"{OPTIONS_ENV_VAR} must be a JSON object of fsspec options, not {raw!r}")
    return options
