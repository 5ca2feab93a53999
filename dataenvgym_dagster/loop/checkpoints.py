"""Student checkpoints: deterministic folders on disk, recorded with a fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict

WEIGHTS_FILE = "model.safetensors"


class StudentCheckpoint(BaseModel):
    """A saved student and what it is; evaluation refuses it if the files changed since."""

    model_config = ConfigDict(frozen=True)

    domain: str
    experiment: str | None = None
    iteration: int | None = None
    path: str
    sha256: str

    @property
    def label(self) -> str:
        if self.experiment is None:
            return f"base student for {self.domain}"
        return f"iteration_{self.iteration} student for {self.domain}|{self.experiment}"


def checkpoint_dir(home: Path, domain: str, experiment: str | None = None, iteration: int | None = None) -> Path:
    """Where a checkpoint lives: ``checkpoints/<domain>/base`` or ``.../<experiment>/iteration_<t>``."""
    if experiment is None:
        return home / "checkpoints" / domain / "base"
    return home / "checkpoints" / domain / experiment / f"iteration_{iteration}"


def fingerprint(directory: Path) -> str:
    """SHA-256 of the checkpoint's weights file."""
    digest = hashlib.sha256()
    with open(directory / WEIGHTS_FILE, "rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_path(checkpoint: StudentCheckpoint) -> Path:
    """The checkpoint's folder, after checking that its weights are the ones recorded."""
    directory = Path(checkpoint.path)
    if not (directory / WEIGHTS_FILE).exists():
        raise FileNotFoundError(
            f"the {checkpoint.label} is recorded at {directory}, but no {WEIGHTS_FILE} is there; "
            "re-materialise the checkpoint asset"
        )
    actual = fingerprint(directory)
    if actual != checkpoint.sha256:
        raise ValueError(
            f"the {checkpoint.label} at {directory} has changed since it was materialised "
            f"(sha256 {actual[:12]} != recorded {checkpoint.sha256[:12]}); re-materialise it and what depends on it "
            "rather than evaluating a different model"
        )
    return directory
