"""MATH loaders: the original release, the per-subject Parquet mirror and MATH-500, written here in their exact layouts."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataenvgym_dagster.domain.math import MATH
from dataenvgym_dagster.domain.protocol import BenchmarkFormatError, BenchmarkSpec

SUBJECTS = {"algebra": "Algebra", "counting_and_probability": "Counting & Probability", "geometry": "Geometry"}


def row(subject: str, level: str, n: int) -> dict:
    """One record with the release's four string fields (problem, level, type, solution)."""
    return {
        "problem": f"If $x + {n} = {2 * n}$, what is $x$? ({subject} {n})",
        "level": level,
        "type": SUBJECTS[subject],
        "solution": f"Subtracting ${n}$ gives $x = \\boxed{{{n}}}$.",
    }


def rows(split: str) -> dict[str, list[dict]]:
    """Per subject, per level 1..3 and a 'Level ?' geometry problem (the real train split has such levels)."""
    per_level = 3 if split == "train" else 2
    out = {subject: [row(subject, f"Level {level}", 100 * level + i) for level in (1, 2, 3) for i in range(per_level)] for subject in SUBJECTS}
    out["geometry"].append(row("geometry", "Level ?", 999))
    return out


def write_original(root: Path) -> Path:
    for split in ("train", "test"):
        for subject, records in rows(split).items():
            folder = root / "MATH" / split / subject
            folder.mkdir(parents=True)
            for number, record in enumerate(records):
                (folder / f"{number * 7 + 1}.json").write_text(json.dumps(record))
    return root / "MATH"


def write_parquet(root: Path) -> Path:
    for split in ("train", "test"):
        for subject, records in rows(split).items():
            folder = root / "hendrycks_math" / subject
            folder.mkdir(parents=True, exist_ok=True)
            table = pa.table({field: pa.array([r[field] for r in records], pa.string()) for field in ("problem", "level", "type", "solution")})
            pq.write_table(table, folder / f"{split}-00000-of-00001.parquet")
    return root / "hendrycks_math"


def math500_record(subject: str, level: int, n: int) -> dict:
    record = row(subject, f"Level {level}", n)
    return {
        "problem": record["problem"], "solution": record["solution"], "answer": str(n),
        "subject": SUBJECTS[subject], "level": level, "unique_id": f"test/{subject}/{n}.json",
    }


def write_math500(root: Path, lines: list[str] | None = None) -> Path:
    file = root / "MATH-500" / "test.jsonl"
    file.parent.mkdir(parents=True)
    records = [math500_record(subject, level, 10 * level + i) for subject in SUBJECTS for level in (1, 2, 4) for i in range(2)]
    file.write_text("\n".join(lines if lines is not None else [json.dumps(r) for r in records]) + "\n")
    return file


def load(source: str, path: Path, **spec) -> dict:
    return MATH.sources[source].load(BenchmarkSpec(source=source, path=str(path), **spec))


def test_original_release_validation_comes_from_train_stratified_by_type_and_level(tmp_path):
    root = write_original(tmp_path)
    splits = load("math_original", root, validation_per_skill=2, test_per_skill=None, seed=1)
    validation, test = splits["validation"], splits["test"]
    assert all(p.example_id.startswith("train/") for p in validation)
    cells = {p.skill for p in validation}
    assert "geometry/level_unknown" in cells and "algebra/level_3" in cells
    assert all(sum(p.skill == cell for p in validation) == min(2, 3 if "unknown" not in cell else 1) for cell in cells)
    # test_per_skill: null keeps every test problem, none dropped.
    assert len(test) == sum(len(r) for r in rows("test").values())
    first = next(p for p in test if p.example_id == "test/algebra/1")
    assert (first.skill, first.answer, first.payload["level"], first.payload["type"]) == ("algebra/level_1", "100", "Level 1", "Algebra")
    assert first.payload["solution"].endswith("$x = \\boxed{100}$.")
    assert load("math_original", root, validation_per_skill=2, test_per_skill=None, seed=1) == splits


def test_original_release_test_can_be_sampled_per_cell(tmp_path):
    splits = load("math_original", write_original(tmp_path), validation_per_skill=1, test_per_skill=1)
    assert len(splits["test"]) == len({p.skill for p in splits["test"]}) == 10  # 3 types x 3 levels + geometry/level_unknown


def test_parquet_mirror_reads_every_row_of_every_subject(tmp_path):
    splits = load("math_parquet", write_parquet(tmp_path), validation_per_skill=50, test_per_skill=None)
    assert len(splits["validation"]) == sum(len(r) for r in rows("train").values())
    assert len(splits["test"]) == sum(len(r) for r in rows("test").values())
    ids = {p.example_id for p in splits["test"]}
    assert {"test/algebra/00000", "test/geometry/00006"} <= ids
    assert next(p for p in splits["test"] if p.example_id == "test/geometry/00006").skill == "geometry/level_unknown"


def test_math500_is_the_test_split_with_its_unique_ids_and_integer_levels(tmp_path):
    train = write_original(tmp_path)
    file = write_math500(tmp_path)
    spec = {"validation_per_skill": 1, "test_per_skill": None, "options": {"train_path": str(train)}}
    for path in (file, file.parent):  # the file or its folder
        splits = load("math500", path, **spec)
        assert len(splits["test"]) == 18
        problem = next(p for p in splits["test"] if p.example_id == "test/counting_and_probability/41.json")
        assert (problem.skill, problem.answer) == ("counting_and_probability/level_4", "41")
        assert all(p.example_id.startswith("train/") for p in splits["validation"])
    parquet = write_parquet(tmp_path)
    assert load("math500", file, **{**spec, "options": {"train_path": str(parquet)}})["validation"][0].payload["source"] == "math_parquet"


def test_math500_without_train_files_says_where_validation_comes_from(tmp_path):
    with pytest.raises(BenchmarkFormatError, match="options.train_path"):
        load("math500", write_math500(tmp_path))


def test_a_missing_path_names_it_and_the_expected_layout(tmp_path):
    with pytest.raises(BenchmarkFormatError, match=r"nowhere.*original MATH release: <path>/\{train,test\}/<subject>/<n>.json"):
        load("math_original", tmp_path / "nowhere")
    with pytest.raises(BenchmarkFormatError, match=r"holds no Parquet files of the train split; expected MATH as Parquet .*lighteval/MATH"):
        load("math_parquet", tmp_path)
    with pytest.raises(BenchmarkFormatError, match=r"test.jsonl does not exist; expected MATH-500"):
        load("math500", tmp_path, options={"train_path": str(tmp_path)})


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: r.pop("solution"), r"missing field\(s\) solution"),
        (lambda r: r.update(level="Level 9"), r"level 'Level 9' is not 'Level 1'..'Level 5'"),
        (lambda r: r.update(type="Topology"), r"type 'Topology' is not a MATH type"),
        (lambda r: r.update(solution="The answer is 5."), r"the solution has no \\boxed\{…\} answer"),
    ],
)
def test_a_malformed_original_file_is_named_and_nothing_is_dropped(tmp_path, damage, message):
    root = write_original(tmp_path)
    file = root / "test" / "algebra" / "8.json"
    record = json.loads(file.read_text())
    damage(record)
    file.write_text(json.dumps(record))
    with pytest.raises(BenchmarkFormatError, match=rf"test/algebra/8.json: {message}.*expected the original MATH release"):
        load("math_original", root)


def test_an_original_file_that_is_not_json_is_named(tmp_path):
    root = write_original(tmp_path)
    (root / "train" / "geometry" / "1.json").write_text("{not json")
    with pytest.raises(BenchmarkFormatError, match=r"train/geometry/1.json is not valid JSON"):
        load("math_original", root)


def test_a_malformed_parquet_row_or_missing_column_is_named(tmp_path):
    root = write_parquet(tmp_path)
    file = root / "algebra" / "test-00000-of-00001.parquet"
    table = pq.read_table(file)
    levels = table.column("level").to_pylist()
    levels[4] = None
    pq.write_table(table.set_column(1, "level", pa.array(levels, pa.string())), file)
    with pytest.raises(BenchmarkFormatError, match=r"algebra/test-00000-of-00001.parquet row 4: missing field\(s\) level"):
        load("math_parquet", root)
    pq.write_table(table.drop_columns(["type"]), file)
    with pytest.raises(BenchmarkFormatError, match=r"test-00000-of-00001.parquet lacks column\(s\) type"):
        load("math_parquet", root)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{broken", r"line 3 is not valid JSON"),
        ('{"problem": "p", "solution": "s", "answer": "1", "subject": "Algebra", "level": "Level 1", "unique_id": "u"}', r"line 3: level 'Level 1' must be an integer 1-5"),
        ('{"problem": "p", "solution": "s", "subject": "Algebra", "level": 1, "unique_id": "u"}', r"line 3: missing field\(s\) answer"),
        ("", r"line 3 is empty"),
    ],
)
def test_a_malformed_math500_line_is_named_with_its_number(tmp_path, line, message):
    good = [json.dumps(math500_record("algebra", 1, n)) for n in (1, 2, 3)]
    file = write_math500(tmp_path, [good[0], good[1], line, good[2]])
    with pytest.raises(BenchmarkFormatError, match=rf"test.jsonl {message}.*expected MATH-500's test.jsonl"):
        load("math500", file, options={"train_path": str(write_original(tmp_path))})


def _parquet(file: Path, records: list[dict]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({field: pa.array([r[field] for r in records], pa.string()) for field in ("problem", "level", "type", "solution")}), file)


def test_the_converted_lighteval_layout_that_the_reference_loaded_is_read(tmp_path):
    root = tmp_path / "lighteval_MATH"
    for split in ("train", "test"):
        for subject, records in rows(split).items():
            _parquet(root / subject / split / "0000.parquet", records)
    splits = load("math_parquet", root, validation_per_skill=50, test_per_skill=None)
    assert len(splits["test"]) == sum(len(r) for r in rows("test").values())
    assert {"test/algebra/00000", "test/geometry/00006"} <= {p.example_id for p in splits["test"]}
    # With the `all` config beside the subject configs (the whole converted branch), the rows are read once.
    for split in ("train", "test"):
        _parquet(root / "all" / split / "0000.parquet", [r for records in rows(split).values() for r in records])
    assert len(load("math_parquet", root, validation_per_skill=50, test_per_skill=None)["test"]) == len(splits["test"])


def test_a_single_data_folder_names_ids_by_subject_not_by_folder(tmp_path):
    root = tmp_path / "MATH"
    for split in ("train", "test"):
        records = [r for records in rows(split).values() for r in records]
        _parquet(root / "data" / f"{split}-00000-of-00002.parquet", records[:5])
        _parquet(root / "data" / f"{split}-00001-of-00002.parquet", records[5:])
    splits = load("math_parquet", root, validation_per_skill=50, test_per_skill=None)
    ids = [p.example_id for p in splits["test"]]
    assert not any("/data/" in i for i in ids) and len(ids) == len(set(ids)) == sum(len(r) for r in rows("test").values())
    assert ids[:2] == ["test/algebra/00000", "test/algebra/00001"] and "test/geometry/00006" in ids
    assert load("math_parquet", root / "data", validation_per_skill=50, test_per_skill=None) == splits  # the data folder itself
    math500 = load("math500", write_math500(tmp_path), validation_per_skill=1, options={"train_path": str(root)})
    assert {p.payload["source"] for p in math500["validation"]} == {"math_parquet"}


def test_a_repeated_math500_unique_id_is_caught_at_load_with_its_file_and_lines(tmp_path):
    records = [math500_record("algebra", 1, 10), math500_record("algebra", 2, 11), math500_record("geometry", 2, 12)]
    records[2]["unique_id"] = records[0]["unique_id"]
    file = write_math500(tmp_path, [json.dumps(r) for r in records])
    with pytest.raises(BenchmarkFormatError, match=r"test.jsonl line 3: unique_id 'test/algebra/10.json' already names line 1"):
        load("math500", file, options={"train_path": str(write_original(tmp_path))})
