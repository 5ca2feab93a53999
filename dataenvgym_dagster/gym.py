"""A Gymnasium-style API over the teaching loop, for notebooks and for training agents.

    env = TeachingEnv("arithmetic", "skill_list")
    state, info = env.reset()                     # iteration 0 evaluated; the state iteration 1 plans from
    while True:
        plan = my_agent(state, env.context())     # any policy(state, context) -> DataGenerationPlan
        state, reward, terminated, truncated, info = env.step(plan)
        if terminated:
            break

One path, not two: ``reset`` and ``step`` materialise the experiment partition's own iteration
assets through Dagster (the UI shows the trajectory with lineage; the warehouse holds the same
rows as a catalogue run of the same plans). A step hands its plan to ``data_generation_plan`` as
run config; the environment checks it like any policy's plan. The reward is the paper's: the
change in validation accuracy over the step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from dagster import AssetKey, DagsterInstance, Definitions

from dataenvgym_dagster.defs.jobs import FOUNDATIONS_JOB, TEACHING_LOOP_JOB, plan_job
from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.defs.partitions import loop_partition_key, register_experiments
from dataenvgym_dagster.domain.environments.base import EnvironmentState, PolicyContext
from dataenvgym_dagster.domain.plans import DataGenerationPlan
from dataenvgym_dagster.experiments import ExperimentCatalog, load_catalog
from dataenvgym_dagster.loop.steps import iteration_seed

EVALUATED = ("student_checkpoint", "validation_evaluation", "test_evaluation")
OBSERVED = ("skill_taxonomy", "environment_state")


class StepError(RuntimeError):
    """A reset or step whose Dagster run failed; the message is the failing step's error."""


class TeachingEnv:
    """One domain × experiment partition as an environment: ``reset()``, then ``step(plan)`` per iteration.

    ``catalog_file`` and ``home`` default to ``$DATAENVGYM_EXPERIMENTS`` and ``$DATAENVGYM_HOME``;
    ``instance`` to the persistent instance under ``$DAGSTER_HOME`` (the one the UI reads).
    The episode ends after the catalogue's ``iterations``.
    """

    def __init__(
        self,
        domain: str,
        experiment: str,
        *,
        catalog_file: Path | None = None,
        home: Path | None = None,
        instance: DagsterInstance | None = None,
        definitions: Definitions | None = None,
    ) -> None:
        from dataenvgym_dagster.definitions import build_definitions
        from dataenvgym_dagster.defs.resources import default_home

        self.catalog: ExperimentCatalog = load_catalog(catalog_file)
        self.catalog.check_pair(domain, experiment)
        self.domain, self.experiment = domain, experiment
        self.settings = self.catalog.experiment(experiment)
        self.home = Path(home) if home else default_home()
        self.defs = definitions or build_definitions(self.catalog, str(self.home), catalog_file)
        if instance is None:
            from dataenvgym_dagster.cli import _instance

            instance = _instance(self.home)
        self.instance = instance
        self.iteration = 0  # the last evaluated iteration
        self.state: EnvironmentState | None = None

    @property
    def iterations(self) -> int:
        return self.catalog.iterations

    def context(self) -> PolicyContext:
        """What a policy gets besides the state: the budget and the seed of the iteration it plans."""
        return PolicyContext(budget=self.settings.data_budget, seed=iteration_seed(self.settings, self.iteration + 1))

    def reset(self) -> tuple[EnvironmentState, dict[str, Any]]:
        """Foundations (if missing or stale), iteration 0 evaluated, and the state iteration 1 plans from."""
        register_experiments(self.instance, [self.experiment])
        foundations = plan_job(self.defs, self.instance, FOUNDATIONS_JOB, self.domain)
        if foundations.stale:
            self._execute(FOUNDATIONS_JOB, self.domain, foundations.stale)
        self._materialise(["experiment_config", *EVALUATED], 0)
        self.iteration = 0
        self.state = self._observe()
        return self.state, self._info()

    def step(self, plan: DataGenerationPlan) -> tuple[EnvironmentState | None, float, bool, bool, dict[str, Any]]:
        """Generate the plan's data, train, evaluate: ``(state, reward, terminated, truncated, info)``.

        ``state`` is the next iteration's (``None`` once the episode has ended); ``reward`` the
        change in validation accuracy; ``truncated`` is always False. A plan the environment
        refuses raises :class:`StepError` with its reasons, and the iteration is unchanged.
        """
        if self.state is None:
            raise StepError("call reset() before step()")
        if self.iteration >= self.iterations:
            raise StepError(f"the episode ended after iteration {self.iterations}; call reset() to start again")
        iteration = self.iteration + 1
        config = {"ops": {iteration_key(iteration, "data_generation_plan").to_python_identifier(): {"config": {"plan": plan.model_dump_json()}}}}
        self._materialise(["data_generation_plan", "generated_dataset", *EVALUATED], iteration, config)
        before = self._validation_accuracy(iteration - 1)
        self.iteration = iteration
        reward = self._validation_accuracy(iteration) - before
        terminated = iteration >= self.iterations
        self.state = None if terminated else self._observe()
        return self.state, reward, terminated, False, self._info()

    # -- Dagster ---------------------------------------------------------------------------------------
    def _observe(self) -> EnvironmentState:
        iteration = self.iteration + 1
        self._materialise(list(OBSERVED), iteration)
        return self._load(iteration, "environment_state")

    def _materialise(self, names: list[str], iteration: int, run_config: dict | None = None) -> None:
        self._execute(TEACHING_LOOP_JOB, loop_partition_key(self.domain, self.experiment),
                      [iteration_key(iteration, name) for name in names], run_config)

    def _execute(self, job: str, partition, selection: list[AssetKey], run_config: dict | None = None) -> None:
        result = self.defs.resolve_job_def(job).execute_in_process(
            partition_key=partition, instance=self.instance, asset_selection=selection, run_config=run_config,
            raise_on_error=False, tags={"dataenvgym/gym": "true"},
        )
        if not result.success:
            failures = [_root_cause(e.event_specific_data.error) for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
            raise StepError("; ".join(failures) or f"{job} failed for {partition}")

    def _load(self, iteration: int, name: str) -> Any:
        return self.defs.load_asset_value(
            iteration_key(iteration, name), instance=self.instance, partition_key=str(loop_partition_key(self.domain, self.experiment)),
        )

    def _validation_accuracy(self, iteration: int) -> float:
        results: pl.DataFrame = self._load(iteration, "validation_evaluation")
        return float(results["correct"].mean())

    def _info(self) -> dict[str, Any]:
        test: pl.DataFrame = self._load(self.iteration, "test_evaluation")
        return {
            "iteration": self.iteration, "validation_accuracy": self._validation_accuracy(self.iteration),
            "test_accuracy": float(test["correct"].mean()),
        }


def _root_cause(error: Any) -> str:
    """The message of the error that started a step failure (Dagster wraps it in its own)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error.message.strip()
