"""A benchmark file saved in another encoding than the published UTF-8 (a Latin-1 ``é``) is named
with the source's words, the path and the byte, as one line: never the codec's bare message."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataenvgym_dagster.domain.protocol import BenchmarkFormatError, BenchmarkSpec
from dataenvgym_dagster.domain.registry import get_domain

LATIN1_ROW = b'{"question": "caf\xe9"}\n'  # byte 17 is the Latin-1 e-acute


def mnms(folder: Path) -> Path:
    for name in ("test_human_verified_filtered.json", "test_human_verified.json"):
        (folder / name).write_bytes(LATIN1_ROW)
    return folder / "test_human_verified_filtered.json"


def math500(folder: Path) -> Path:
    (folder / "test.jsonl").write_bytes(LATIN1_ROW)
    return folder / "test.jsonl"


def gqa(folder: Path) -> Path:
    (folder / "images").mkdir()
    (folder / "val_balanced_questions.json").write_bytes(LATIN1_ROW)
    return folder / "val_balanced_questions.json"


def livecodebench(folder: Path) -> Path:
    (folder / "test.jsonl").write_bytes(LATIN1_ROW)
    return folder / "test.jsonl"


def humaneval(folder: Path) -> Path:
    (folder / "HumanEval.jsonl").write_bytes(LATIN1_ROW)
    return folder / "HumanEval.jsonl"


@pytest.mark.parametrize(
    ("domain", "source", "write", "what"),
    [
        ("tool_use", "mnms", mnms, "MnMs file"),
        ("math", "math500", math500, "MATH file"),
        ("vqa", "gqa", gqa, "GQA questions file"),
        ("code", "livecodebench", livecodebench, "LiveCodeBench file"),
        ("code", "humaneval", humaneval, "HumanEval file"),
    ],
)
def test_a_file_that_is_not_utf8_is_named_with_its_byte(tmp_path, domain, source, write, what):
    bad = write(tmp_path)
    path = bad if source == "humaneval" else tmp_path  # HumanEval's path is the file itself
    spec = BenchmarkSpec(source=source, path=str(path), validation_per_skill=1, test_per_skill=None)
    with pytest.raises(BenchmarkFormatError) as raised:
        get_domain(domain).sources[source].load(spec)
    assert str(raised.value) == f"{what} {bad} is not UTF-8 text (byte 17: invalid continuation byte); the published files are UTF-8"


def test_a_folder_where_a_benchmark_file_belongs_is_named(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "val_balanced_questions.json").mkdir()
    spec = BenchmarkSpec(source="gqa", path=str(tmp_path), validation_per_skill=1, test_per_skill=None)
    with pytest.raises(BenchmarkFormatError) as raised:
        get_domain("vqa").sources["gqa"].load(spec)
    assert str(raised.value) == f"GQA questions file {tmp_path / 'val_balanced_questions.json'} cannot be read: Is a directory"
