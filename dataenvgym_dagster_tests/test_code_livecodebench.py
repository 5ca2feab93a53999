"""LiveCodeBench code_generation_lite release files, in the published format, decoded safely and judged."""

from __future__ import annotations

import base64
import json
import os
import pickle
import zlib
from pathlib import Path

import pytest

from dataenvgym_dagster.domain.code import CODE
from dataenvgym_dagster.domain.code.livecodebench import UnsafePickleError, decode_private_tests
from dataenvgym_dagster.domain.protocol import BenchmarkFormatError, BenchmarkSpec


def encode_private(cases: list[dict]) -> str:
    """How code_generation_lite stores private tests: base64(zlib(pickle(JSON text)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode("utf-8")


def stdin_row(question_id: str, date: str, difficulty: str, public: list, private: list) -> dict:
    return {
        "question_title": f"Sum {question_id}",
        "question_content": "You are given two integers A and B. Print A+B.\n\nInput\n\nA B\n\nOutput\n\nPrint the answer.",
        "platform": "atcoder",
        "question_id": question_id,
        "contest_id": question_id.split("_")[0],
        "contest_date": date,
        "starter_code": "",
        "difficulty": difficulty,
        "public_test_cases": json.dumps([{"input": i, "output": o, "testtype": "stdin"} for i, o in public]),
        "private_test_cases": encode_private([{"input": i, "output": o, "testtype": "stdin"} for i, o in private]),
        "metadata": "{}",
    }


def functional_row(question_id: str, date: str) -> dict:
    return {
        "question_title": "total-distance-traveled",
        "question_content": "A truck has two fuel tanks... Return the maximum distance which can be traveled.",
        "platform": "leetcode",
        "question_id": question_id,
        "contest_id": "weekly-contest-350",
        "contest_date": date,
        "starter_code": "class Solution:\n    def distanceTraveled(self, mainTank: int, additionalTank: int) -> int:\n        ",
        "difficulty": "medium",
        "public_test_cases": json.dumps([
            {"input": "5\n10", "output": "60", "testtype": "functional"},
            {"input": "1\n2", "output": "10", "testtype": "functional"},
        ]),
        "private_test_cases": encode_private([{"input": "9\n1", "output": "100", "testtype": "functional"}]),
        "metadata": json.dumps({"func_name": "distanceTraveled"}),
    }


def write_releases(folder: Path) -> Path:
    """release_v1 (test.jsonl) and what release_v2 added (test2.jsonl)."""
    folder.mkdir(exist_ok=True)
    v1 = [
        stdin_row("abc301_a", "2023-05-13T00:00:00", "easy", [("2 3\n", "5\n")], [("10 -4\n", "6\n"), ("0 0\n", "0\n")]),
        functional_row("2857", "2023-06-18T00:00:00"),
        stdin_row("abc340_b", "2024-02-10T00:00:00", "hard", [("1 1\n", "2\n")], [("7 8\n", "15\n")]),
    ]
    v2 = [stdin_row("abc345_a", "2024-03-16T00:00:00", "easy", [("4 4\n", "8\n")], [("5 5\n", "10\n")])]
    (folder / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in v1))
    (folder / "test2.jsonl").write_text("".join(json.dumps(row) + "\n" for row in v2))
    return folder


def load(folder: Path, **options):
    spec = BenchmarkSpec(source="livecodebench", path=str(folder), validation_per_skill=10, test_per_skill=None, options=options)
    return CODE.sources["livecodebench"].load(spec)


STDIN_SOLUTION = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
FUNCTIONAL_BODY = "return mainTank * 10 + min(additionalTank, (mainTank - 1) // 4) * 10\n"


def test_the_paper_splits_are_release_v1_for_test_and_release_v2_minus_v1_for_validation(tmp_path):
    splits = load(write_releases(tmp_path / "lcb"))
    assert sorted(p.example_id for p in splits["test"]) == ["livecodebench/2857", "livecodebench/abc301_a", "livecodebench/abc340_b"]
    assert [p.example_id for p in splits["validation"]] == ["livecodebench/abc345_a"]
    skills = {p.example_id: p.skill for p in splits["test"]}
    assert skills["livecodebench/abc301_a"] == "easy/atcoder" and skills["livecodebench/2857"] == "medium/leetcode"


def test_releases_and_date_windows_come_from_the_options(tmp_path):
    folder = write_releases(tmp_path / "lcb")
    splits = load(folder, test={"release": "release_v2", "start_date": "2024-01-01"}, validation={"release": "v1", "end_date": "2023-12-31"})
    assert sorted(p.example_id for p in splits["test"]) == ["livecodebench/abc340_b", "livecodebench/abc345_a"]
    assert sorted(p.example_id for p in splits["validation"]) == ["livecodebench/2857", "livecodebench/abc301_a"]
    with pytest.raises(BenchmarkFormatError, match="release 'release_v9' is unknown"):
        load(folder, test={"release": "release_v9"})


def test_private_tests_are_decoded_and_judged_with_the_public_ones(tmp_path):
    problems = {p.example_id: p for p in load(write_releases(tmp_path / "lcb"))["test"]}
    stdin, functional = problems["livecodebench/abc301_a"], problems["livecodebench/2857"]
    assert len(stdin.payload["tests"]) == 3 and stdin.payload["tests"][1] == {"input": "10 -4\n", "output": "6\n"}
    scores = CODE.score(
        [stdin, functional, functional, stdin],
        [STDIN_SOLUTION, FUNCTIONAL_BODY, "return mainTank * 10\n", "a, b = map(int, input().split())\nprint(a - b if a > 5 else a + b)"],
    )
    assert [s.correct for s in scores] == [True, True, False, False]
    # The wrong answers fail on a private test, shown with its input, expectation and output.
    assert scores[2].verdict == "wrong_answer on test 1 of 3; input: '5\\n10'; expected: '60'; actual: '50'"
    assert scores[3].verdict == "wrong_answer on test 2 of 3; input: '10 -4\\n'; expected: '6\\n'; actual: '14\\n'"
    assert scores[0].metrics["tests"] == 3.0


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    payload = _RunsCode()
    payload.marker = marker
    malicious = base64.b64encode(zlib.compress(pickle.dumps(payload))).decode()
    with pytest.raises(UnsafePickleError, match=r"refused to unpickle private_test_cases: .*(posix|os)\.system"):
        decode_private_tests(malicious, "test.jsonl line 1")
    assert not marker.exists()
    not_a_string = base64.b64encode(zlib.compress(pickle.dumps([{"input": "1", "output": "1"}]))).decode()
    with pytest.raises(UnsafePickleError, match="unpickles to a list"):
        decode_private_tests(not_a_string, "test.jsonl line 2")


def test_a_malicious_row_in_a_release_file_names_the_file_line_and_question(tmp_path):
    folder = write_releases(tmp_path / "lcb")
    row = stdin_row("abc999_z", "2023-07-01T00:00:00", "easy", [("1 2\n", "3\n")], [])
    payload = _RunsCode()
    payload.marker = tmp_path / "pwned"
    row["private_test_cases"] = base64.b64encode(zlib.compress(pickle.dumps(payload))).decode()
    with (folder / "test.jsonl").open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    with pytest.raises(UnsafePickleError, match=r"test.jsonl line 4 \(question_id abc999_z\): refused to unpickle"):
        load(folder)
    assert not (tmp_path / "pwned").exists()


def test_malformed_rows_and_missing_files_are_named(tmp_path):
    folder = write_releases(tmp_path / "lcb")
    rows = (folder / "test.jsonl").read_text().splitlines()
    broken = json.loads(rows[1])
    del broken["metadata"]
    (folder / "test.jsonl").write_text("\n".join([rows[0], json.dumps(broken), rows[2]]))
    with pytest.raises(BenchmarkFormatError, match=r"test.jsonl line 2 lacks \['metadata'\]"):
        load(folder)
    with pytest.raises(BenchmarkFormatError, match="missing/test.jsonl does not exist"):
        load(tmp_path / "missing")


def test_bad_options_a_file_for_the_folder_and_a_non_utf8_release_are_each_one_line(tmp_path):
    folder = write_releases(tmp_path / "lcb")
    failures = []
    for attempt in (
        lambda: load(folder, test={"release": "release_v1", "bogus": 1}),
        lambda: load(folder / "test.jsonl"),
    ):
        with pytest.raises(BenchmarkFormatError) as raised:
            attempt()
        failures.append(str(raised.value))
    (folder / "test2.jsonl").write_bytes(b'{"question_title": "caf\xe9"}\n')
    with pytest.raises(BenchmarkFormatError) as raised:
        load(folder)
    failures.append(str(raised.value))
    assert failures == [
        "benchmark.options for livecodebench are invalid: benchmark.options.test.bogus: is not a known setting (a typo?)",
        f"LiveCodeBench path {folder / 'test.jsonl'} is a file; benchmark.path must be the folder holding "
        "code_generation_lite's test.jsonl, test2.jsonl, test3.jsonl, test4.jsonl, test5.jsonl, test6.jsonl",
        f"LiveCodeBench file {folder / 'test2.jsonl'} is not UTF-8 text (byte 23: invalid continuation byte); the published files are UTF-8",
    ]
