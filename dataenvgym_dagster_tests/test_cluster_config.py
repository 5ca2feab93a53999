"""Deployment profiles as configuration: which executor, which instance, which pod requests; no services started."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs import deployment
from dataenvgym_dagster.defs.jobs import TEACHING_LOOP_JOB
from dataenvgym_dagster.experiments import load_catalog

from .conftest import write_catalog

REPOSITORY = Path(__file__).resolve().parents[1]
VALUES = REPOSITORY / "deploy" / "k8s" / "values.yaml"


def definitions(tmp_path: Path):
    catalog_file = write_catalog(tmp_path / "experiments.yaml")
    return build_definitions(load_catalog(catalog_file), str(tmp_path / "home"), catalog_file)


def test_the_default_profile_is_todays_embedded_one(tmp_path, monkeypatch):
    monkeypatch.delenv(deployment.PROFILE_ENV_VAR, raising=False)
    assert deployment.profile() == "local"
    assert definitions(tmp_path).resolve_job_def(TEACHING_LOOP_JOB).executor_def.name == "in_process"


def test_an_unknown_profile_names_the_variable_and_the_choices():
    with pytest.raises(ValueError, match=r"DATAENVGYM_PROFILE='laptop' .* local, cluster, k8s"):
        deployment.profile({deployment.PROFILE_ENV_VAR: "laptop"})


def test_pool_limits_are_configuration_and_a_typo_is_an_error():
    assert deployment.parse_pool_limits("student=4") == {"student": 4, "teacher": 8}
    assert deployment.parse_pool_limits("student=2, teacher=32") == {"student": 2, "teacher": 32}
    assert deployment.parse_pool_limits("gpu=3") == {"student": 3, "teacher": 8}  # the pool's former name
    with pytest.raises(ValueError, match="DATAENVGYM_POOL_LIMITS entry 'gpu:2'"):
        deployment.parse_pool_limits("gpu:2")


def test_the_cluster_profile_runs_steps_on_celery_with_the_broker_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(deployment.PROFILE_ENV_VAR, "cluster")
    monkeypatch.setenv(deployment.BROKER_ENV_VAR, "redis://broker.example:6379/0")
    job = definitions(tmp_path).resolve_job_def(TEACHING_LOOP_JOB)
    assert job.executor_def.name == "celery"
    settings = deployment.ClusterSettings.from_env()
    assert settings.celery_config()["broker"] == "redis://broker.example:6379/0"
    assert settings.worker_config()["execution"]["config"] == settings.celery_config()  # workers and runs agree


def test_the_cluster_instance_is_postgres_with_the_queued_coordinator_and_validates(tmp_path, monkeypatch):
    monkeypatch.setenv(deployment.POSTGRES_URL_ENV_VAR, "postgresql+psycopg2://dagster@db.example/dagster")
    path = deployment.write_instance(tmp_path, deployment.ClusterSettings(run_retries=2))
    assert "db.example" not in path.read_text()  # the URL, a secret, stays in the environment
    config, _ = dagster_instance_config(str(tmp_path))
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        assert config[storage]["config"]["postgres_url"] == {"env": deployment.POSTGRES_URL_ENV_VAR}
    assert config["event_log_storage"]["class"] == "PoolSafePostgresEventLogStorage"  # defs/pool_slots.py
    assert "&id" not in path.read_text()  # no YAML aliases: the file reads as written
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_retries"] == {"enabled": True, "max_retries": 2}
    assert yaml.safe_load((tmp_path / "celery.yaml").read_text())["execution"]["config"]["broker"] == deployment.DEFAULT_BROKER


def test_every_training_and_evaluation_step_holds_the_gpu_pool_and_teacher_steps_the_teacher_pool(tmp_path):
    graph = definitions(tmp_path).resolve_asset_graph()
    pools = {key.to_user_string(): graph.get(key).pools for key in graph.get_all_asset_keys()}
    assert pools["base_student"] == pools["it2_checkpoint"] == pools["it0_test_eval"] == {"student"}
    assert pools["it1_generated_data"] == pools["it1_skill_taxonomy"] == {"teacher"}
    assert pools["it1_env_state"] == pools["pretraining_corpus"] == set()


def test_the_already_solved_filter_puts_the_dataset_step_in_the_gpu_pool(tmp_path):
    catalog_file = write_catalog(tmp_path / "experiments.yaml", {"experiments": {"solved": {"quality": {"drop_solved": True}}}, "default_experiment": "solved"})
    graph = build_definitions(load_catalog(catalog_file), str(tmp_path), catalog_file).resolve_asset_graph()
    (dataset,) = [key for key in graph.get_all_asset_keys() if key.to_user_string() == "it1_generated_data"]
    assert graph.get(dataset).pools == {"student"}


def test_the_k8s_profile_runs_a_pod_per_step_and_gpu_steps_request_a_gpu(tmp_path, monkeypatch):
    from dagster_k8s.job import get_user_defined_k8s_config

    monkeypatch.setenv(deployment.PROFILE_ENV_VAR, "k8s")
    job = definitions(tmp_path).resolve_job_def(TEACHING_LOOP_JOB)
    assert job.executor_def.name == "k8s"
    tags = {node.name: node.tags for node in job.graph.node_dict.values()}
    training = get_user_defined_k8s_config({k: json.dumps(v) if not isinstance(v, str) else v for k, v in tags["it1_checkpoint"].items()})
    assert training.container_config["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert "dagster-k8s/config" not in tags["it1_generated_data"]


def test_the_helm_values_run_this_code_location_with_the_k8s_profile_on_one_shared_home():
    values = yaml.safe_load(VALUES.read_text())
    (user_code,) = values["dagster-user-deployments"]["deployments"]
    module = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    assert user_code["dagsterApiGrpcArgs"] == ["-m", module]
    env = {item["name"]: item["value"] for item in user_code["env"]}
    assert deployment.profile(env) == "k8s"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert dict(item.split("=", 1) for item in launcher["envVars"]) == {k: env[k] for k in ("DATAENVGYM_PROFILE", "DATAENVGYM_HOME")}
    # Code server, run pods and step pods mount the same claim at $DATAENVGYM_HOME.
    for holder in (user_code, launcher):
        assert holder["volumeMounts"] == [{"name": "dataenvgym-home", "mountPath": env["DATAENVGYM_HOME"]}]
        assert holder["volumes"][0]["persistentVolumeClaim"]["claimName"] == "dataenvgym-home"
    claim = yaml.safe_load((VALUES.parent / "home-pvc.yaml").read_text())
    assert claim["metadata"]["name"] == "dataenvgym-home" and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
