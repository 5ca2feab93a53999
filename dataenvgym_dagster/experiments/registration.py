"""Which catalogue entries a running code location can take on without reloading.

The asset graph is built once, when the code location loads: its iteration groups, its domain
partitions and the concurrency pool of each step come from the catalogue read then (``loaded``).
An experiment added to the file later (``current``) runs on that graph if it fits it; one that
needs a different graph is refused with the reason, until the code location is reloaded.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field

from dataenvgym_dagster.experiments.config import ExperimentCatalog

RELOAD = "reload the code location (Deployment > Reload in the UI, or restart `make ui`) to run it"


@dataclass(frozen=True)
class Registration:
    """Experiment partition keys to add, and those refused with why."""

    new: tuple[str, ...] = ()
    refused: dict[str, str] = field(default_factory=dict)

    def describe(self, registered: int) -> str:
        parts = [f"registered {', '.join(self.new)}" if self.new else f"no new experiment ({registered} registered)"]
        parts += [f"refused {key}: {why}" for key, why in self.refused.items()]
        return "; ".join(parts)


def needs_reload(loaded: ExperimentCatalog, current: ExperimentCatalog, key: str) -> str | None:
    """Why experiment ``key`` of ``current`` cannot run on definitions loaded from ``loaded``, or None."""
    if current.iterations > loaded.iterations:
        return (
            f"the catalogue asks for {current.iterations} iterations but the loaded definitions have "
            f"{loaded.iterations} (iteration groups are fixed when the code location loads); {RELOAD}"
        )
    missing = [domain for domain in current.domains_of(key) if domain not in loaded.domains]
    if missing:
        return (
            f"domain {missing[0]!r} is not one of the loaded definitions' domains ({', '.join(loaded.domains)}; "
            f"domain partitions are fixed when the code location loads); {RELOAD}"
        )
    solved = any(run.settings.quality.drop_solved for run in loaded.runs.values())
    if current.experiment(key).quality.drop_solved and not solved:
        return (
            "its quality filter drop_solved runs the student inside generated_dataset, which the loaded "
            f"definitions put in the teacher's pool, not the gpu pool; {RELOAD}"
        )
    return None


def plan_registration(loaded: ExperimentCatalog, current: ExperimentCatalog, registered: Set[str]) -> Registration:
    """The experiment partition keys of ``current`` to register, given those already ``registered``."""
    new, refused = [], {}
    for key in current.runs:
        if key in registered:
            continue
        why = needs_reload(loaded, current, key)
        if why is None:
            new.append(key)
        else:
            refused[key] = why
    return Registration(tuple(new), refused)
