"""The garbage collector skips what the code location and the student libraries leave alive, and collects
the young generation less often (machinery/heap.py)."""

import gc
import subprocess
import sys

from dataenvgym_dagster.machinery.heap import YOUNG_COLLECTION_EVERY, freeze_long_lived


def test_a_process_that_loads_the_code_location_and_a_student_backend_freezes_what_they_leave():
    program = """
import gc
from dataenvgym_dagster.definitions import build_definitions
after_definitions = gc.get_freeze_count()
from dataenvgym_dagster.machinery.student.backend import get_backend
from dataenvgym_dagster.machinery.student.settings import StudentSpec
get_backend(StudentSpec())
print(after_definitions, gc.get_freeze_count(), len(gc.get_objects()), gc.get_threshold()[0])
"""
    output = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout
    after_definitions, after_backend, still_collected, young_threshold = map(int, output.split())
    assert after_definitions > 100_000  # Dagster, polars, pydantic and the definitions themselves
    assert after_backend > after_definitions + 100_000  # torch, transformers, peft
    assert still_collected < after_backend / 10  # what a full collection still walks
    assert young_threshold == YOUNG_COLLECTION_EVERY  # rows built by the ten thousand are not walked every 700


def test_each_moment_freezes_once():
    freeze_long_lived("a moment of this test")
    frozen = gc.get_freeze_count()
    created_later = [[index] for index in range(1_000)]
    freeze_long_lived("a moment of this test")
    assert gc.get_freeze_count() == frozen, "a second call froze objects made since the first"
    freeze_long_lived("another moment of this test")
    assert gc.get_freeze_count() >= frozen + len(created_later)
