"""Checkpoint integrity: a manifest of every weight file, sharded checkpoints, and homes that are copied."""

import os
import subprocess

import pytest
from dagster import AssetKey, DagsterInstance
from transformers import AutoModelForCausalLM

from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.jobs import TEACHING_LOOP_JOB
from dataenvgym_dagster.defs.partitions import loop_partition_key, register_experiments
from dataenvgym_dagster.loop.checkpoints import (
    WEIGHTS_FILE,
    ChecksumMismatchError,
    checkpoint_dir,
    folder_checkpoint,
    student_weights,
)

from .tiny_students import save_tiny_student


@pytest.fixture
def sharded(tmp_path):
    """A tiny Llama saved in shards of at most 30 kB under a home, recorded as the base checkpoint."""
    home = tmp_path / "home"
    directory = checkpoint_dir(home, "arithmetic")
    save_tiny_student(tmp_path / "hub", "llama")
    AutoModelForCausalLM.from_pretrained(tmp_path / "hub").save_pretrained(directory, max_shard_size="30KB")
    return home, directory, folder_checkpoint(home, directory, domain="arithmetic")


def test_a_sharded_checkpoint_records_every_shard_and_its_index_and_loads(sharded):
    home, _, checkpoint = sharded
    names = [f.name for f in checkpoint.files]
    shards = [name for name in names if name.startswith("model-0")]
    assert len(shards) >= 2 and "model.safetensors.index.json" in names and WEIGHTS_FILE not in names
    assert checkpoint.path == "checkpoints/arithmetic/base"  # relative to the home
    weights = student_weights(checkpoint, home)
    assert AutoModelForCausalLM.from_pretrained(weights.model).num_parameters() > 0


def test_a_changed_shard_is_named(sharded):
    home, directory, checkpoint = sharded
    shard = directory / "model-00002-of-0000{}.safetensors".format(sum(f.name.startswith("model-0") for f in checkpoint.files))
    shard.write_bytes(shard.read_bytes()[:-8] + bytes(8))
    with pytest.raises(ChecksumMismatchError, match=rf"{shard.name} \(sha256"):
        student_weights(checkpoint, home)


def test_a_missing_shard_is_named(sharded):
    home, directory, checkpoint = sharded
    next(directory.glob("model-00001-*.safetensors")).unlink()
    with pytest.raises(ChecksumMismatchError, match=r"missing \['model-00001-of-"):
        student_weights(checkpoint, home)


def test_files_whose_size_and_mtime_match_the_manifest_are_not_hashed_again(sharded):
    """The documented rule: equal size and mtime_ns are trusted; any other change is re-hashed."""
    home, directory, checkpoint = sharded
    shard = next(directory.glob("model-00001-*.safetensors"))
    stat = shard.stat()
    shard.write_bytes(shard.read_bytes()[:-8] + bytes(8))
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # an edit that hides itself is not caught ...
    student_weights(checkpoint, home)
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # ... any visible one is
    with pytest.raises(ChecksumMismatchError, match=shard.name):
        student_weights(checkpoint, home)


def failure_message(result) -> str:
    failures = [event for event in result.all_events if event.is_failure]
    return "\n".join(str(event.event_specific_data.error) for event in failures if event.event_specific_data)


@pytest.mark.slow
def test_a_copied_home_evaluates_its_own_checkpoints_not_the_originals(completed, tmp_path):
    copy = tmp_path / "copied_home"
    subprocess.run(["cp", "-a", str(completed.home), str(copy)], check=True)
    weights = copy / "checkpoints" / "arithmetic" / "skill_list" / "iteration_1" / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-8] + bytes(8))
    defs = build_definitions(completed.catalog, str(copy), str(completed.home.parent / "experiments.yaml"))
    instance = DagsterInstance.ephemeral()
    register_experiments(instance, ["skill_list"])
    result = defs.resolve_job_def(TEACHING_LOOP_JOB).execute_in_process(
        partition_key=loop_partition_key("arithmetic", "skill_list"), instance=instance,
        asset_selection=[AssetKey("it1_val_eval")], raise_on_error=False,
    )
    assert not result.success
    message = failure_message(result)
    assert "iteration_1 student for arithmetic|skill_list" in message
    assert f"at {weights.parent} has changed since it was materialised" in message
