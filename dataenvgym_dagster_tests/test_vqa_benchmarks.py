"""GQA and NaturalBench loaders on files in their published formats, and NaturalBench's accuracies."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from dataenvgym_dagster.domain.protocol import BenchmarkFormatError, BenchmarkSpec
from dataenvgym_dagster.domain.registry import get_domain
from dataenvgym_dagster.domain.types import Score
from dataenvgym_dagster.domain.vqa import images
from dataenvgym_dagster.domain.vqa.answers import extract_choice, extract_yes_no
from dataenvgym_dagster.domain.vqa.naturalbench import group_accuracy

VQA = get_domain("vqa")
FIXTURES = Path(__file__).parent / "fixtures" / "vqa"


def _jpeg(colour: tuple[int, int, int], size=(40, 30)) -> bytes:
    image = Image.new("RGB", size, colour)
    image.paste((255 - colour[0], 40, 90), (5, 5, 20, 20))  # not blank
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def gqa(tmp_path: Path) -> Path:
    """GQA's balanced questions files (val and testdev, in the published layout) and the images they name."""
    root = tmp_path / "gqa"
    (root / "images").mkdir(parents=True)
    for name in ("val_balanced_questions.json", "testdev_balanced_questions.json"):
        shutil.copy(FIXTURES / name, root / name)
        for index, entry in enumerate(json.loads((root / name).read_text()).values()):
            (root / "images" / f"{entry['imageId']}.jpg").write_bytes(_jpeg((30 * index % 255, 120, 200)))
    return root


def test_gqa_validation_is_a_seeded_sample_per_detailed_type_and_test_is_testdev(gqa: Path):
    spec = BenchmarkSpec(source="gqa", path=str(gqa), validation_per_skill=1, test_per_skill=None, seed=7)
    splits = VQA.sources["gqa"].load(spec)
    validation = splits["validation"]
    assert sorted(p.payload["types"]["detailed"] for p in validation) == ["colorChoose", "relS", "weatherVerify"]
    assert {p.payload["sample_seed"] for p in validation} == {7}
    assert splits == VQA.sources["gqa"].load(spec)  # the seed makes it reproducible
    assert {p.example_id for p in splits["test"]} == {f"gqa/test/{i}" for i in ("20968662", "20968663", "20968664")}
    first = next(p for p in splits["test"] if p.example_id.endswith("20968664"))
    assert first.skill == "rel/relS" and first.answer == "the woman"
    assert Path(first.payload["image"]).is_file() and first.payload["full_answer"] == "The woman is wearing a hat."
    assert images.split_tag(first.question)[1] == "Who is wearing a hat?"
    assert VQA.score([first], ["Woman."])[0].correct  # articles, case and punctuation do not count


def test_a_gqa_question_whose_image_is_missing_names_the_file(gqa: Path):
    (gqa / "images" / "n100002.jpg").unlink()
    with pytest.raises(BenchmarkFormatError, match=r"question '20968664' refers to image .*n100002.jpg, which does not exist"):
        VQA.sources["gqa"].load(BenchmarkSpec(source="gqa", path=str(gqa)))


def test_a_malformed_gqa_entry_names_the_file_and_question(gqa: Path):
    questions = json.loads((gqa / "val_balanced_questions.json").read_text())
    del questions["05451388"]["types"]
    (gqa / "val_balanced_questions.json").write_text(json.dumps(questions))
    with pytest.raises(BenchmarkFormatError, match=r"val_balanced_questions.json, question '05451388' lacks types"):
        VQA.sources["gqa"].load(BenchmarkSpec(source="gqa", path=str(gqa)))


def _naturalbench_row(index: int, kind: str, image_0: bytes | None, image_1: bytes) -> dict:
    if kind == "yes_no":
        questions, answers = ("Is the dog on the left?", "Is the dog on the right?"), ("Yes", "No", "No", "Yes")
    else:
        questions = (
            "What is the man holding? Option: A: an umbrella; B: a bag",
            "What is the man carrying? Option: A: a bag; B: an umbrella",
        )
        answers = ("A", "B", "B", "A")
    return {
        "Index": index, "Source": "Flickr30K",
        "Image_0": {"bytes": image_0, "path": f"{index}_0.jpg"}, "Image_1": {"bytes": image_1, "path": f"{index}_1.jpg"},
        "Question_0": questions[0], "Image_0_Question_0": answers[0], "Image_1_Question_0": answers[1],
        "Question_1": questions[1], "Image_0_Question_1": answers[2], "Image_1_Question_1": answers[3],
        "Question_Type": kind,
    }


def _write_naturalbench(path: Path, rows: list[dict]) -> Path:
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema(
        [("Index", pa.int64()), ("Source", pa.string()), ("Image_0", image), ("Image_1", image)]
        + [(name, pa.string()) for name in ("Question_0", "Image_0_Question_0", "Image_1_Question_0", "Question_1",
                                            "Image_0_Question_1", "Image_1_Question_1", "Question_Type")]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


@pytest.fixture
def naturalbench(tmp_path: Path) -> Path:
    rows = [
        _naturalbench_row(i, "yes_no" if i % 2 else "multiple_choice", _jpeg((10 * i, 50, 60)), _jpeg((200, 10 * i, 60)))
        for i in range(4)
    ]
    return _write_naturalbench(tmp_path / "train-00000-of-00001.parquet", rows)


def test_naturalbench_rows_become_four_instances_and_splits_never_share_a_row(naturalbench: Path, tmp_path: Path):
    spec = BenchmarkSpec(source="naturalbench", path=str(naturalbench), options={"validation_rows": 1})
    splits = VQA.sources["naturalbench"].load(spec)
    assert len(splits["validation"]) == 4 and len(splits["test"]) == 12
    assert {p.payload["row"] for p in splits["validation"]} == {0}
    assert {p.payload["row"] for p in splits["test"]} == {1, 2, 3}
    choice = splits["validation"][0]
    assert choice.payload["options"] == ["an umbrella", "a bag"] and choice.answer == "A"
    # The images are extracted into the home on first use, named by content hash.
    path = images.ImageStore(tmp_path / "home").path(choice.payload)
    assert path.name.startswith(choice.payload["sha256"]) and images.decode(path.read_bytes(), str(path))


def test_a_naturalbench_row_with_a_broken_image_names_the_file_and_row(tmp_path: Path):
    rows = [_naturalbench_row(0, "yes_no", _jpeg((1, 2, 3)), _jpeg((9, 9, 9))), _naturalbench_row(1, "yes_no", b"\x00garbage", _jpeg((9, 9, 9)))]
    path = _write_naturalbench(tmp_path / "nb.parquet", rows)
    with pytest.raises(BenchmarkFormatError, match=r"nb.parquet, row 1 \(Index 1\): Image_0 is missing or does not decode"):
        VQA.sources["naturalbench"].load(BenchmarkSpec(source="naturalbench", path=str(path)))


def test_a_naturalbench_file_without_the_published_columns_names_what_is_missing(tmp_path: Path):
    path = tmp_path / "nb.parquet"
    pq.write_table(pa.table({"Index": [0], "Question_0": ["Is it red?"]}), path)
    with pytest.raises(BenchmarkFormatError, match=r"nb.parquet lacks columns Image_0, Image_1"):
        VQA.sources["naturalbench"].load(BenchmarkSpec(source="naturalbench", path=str(path)))


def test_naturalbench_group_accuracy_needs_all_four_answers_of_a_row_right(naturalbench: Path):
    problems = VQA.sources["naturalbench"].load(BenchmarkSpec(source="naturalbench", path=str(naturalbench), options={"validation_rows": 2}))["validation"]
    # Row 0 (multiple choice): all four right. Row 1 (yes/no): q1 on image 1 wrong.
    completions = ["A", "(B) a bag", "B.", "The answer is A", "Yes", "no", "No, it is not", "no"]
    scores = VQA.score(problems, completions)
    assert [s.correct for s in scores] == [True, True, True, True, True, True, True, False]
    assert group_accuracy(problems, scores) == {
        "accuracy": 7 / 8, "question_accuracy": 3 / 4, "image_accuracy": 3 / 4, "group_accuracy": 1 / 2,
    }
    with pytest.raises(ValueError, match="do not have all four instances"):
        group_accuracy(problems[:3], scores[:3])


def test_yes_no_and_multiple_choice_answers_are_extracted_from_free_text():
    assert extract_yes_no("Yes, there is.") == "yes" and extract_yes_no("I think no") == "no" and extract_yes_no("maybe") == ""
    options = ["an umbrella", "a bag"]
    assert extract_choice("B", options) == "B" and extract_choice("(a) ...", options) == "A"
    assert extract_choice("he holds a bag", options) == "B" and extract_choice("nothing", options) == ""
    assert Score(value=1.0, extracted="A", verdict="correct").correct


def test_the_article_a_is_not_read_as_option_a(tmp_path: Path):
    row = _naturalbench_row(0, "multiple_choice", _jpeg((10, 50, 60)), _jpeg((200, 10, 60)))
    row |= {"Question_0": "What is in front of the house? Option: A: a bicycle; B: a horse",
            "Question_1": "What is by the fence? Option: A: a horse; B: a bicycle"}
    rows = [row, _naturalbench_row(1, "yes_no", _jpeg((30, 50, 60)), _jpeg((200, 30, 60)))]
    spec = BenchmarkSpec(source="naturalbench", path=str(_write_naturalbench(tmp_path / "nb.parquet", rows)), options={"validation_rows": 1})
    problems = VQA.sources["naturalbench"].load(spec)["validation"]
    assert [p.answer for p in problems] == ["A", "B", "B", "A"]
    scores = VQA.score(problems, ["a bicycle", "a horse", "A bicycle.", "It is a horse"])
    assert [(s.extracted, s.correct) for s in scores] == [("A", True), ("B", True), ("B", True), ("A", True)]
    options = problems[0].payload["options"]
    assert extract_choice("a", options) == "A" and extract_choice("(a) a horse", options) == "A"  # a marked letter is a letter
    assert extract_choice("The answer is B", options) == "B" and extract_choice("a bicycle or a horse", options) == ""


def test_a_gqa_image_that_does_not_decode_names_the_question(gqa: Path):
    (gqa / "images" / "n100002.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(BenchmarkFormatError, match=r"testdev_balanced_questions.json, question '20968664': image .*n100002.jpg does not decode"):
        VQA.sources["gqa"].load(BenchmarkSpec(source="gqa", path=str(gqa)))


def _published_naturalbench(root: Path, shards: int = 3, rows_per_shard: int = 2, spelling: str = "Question Type") -> Path:
    """NaturalBench as its current revision is published: data/train-0000i-of-0000n.parquet, column `Question Type`."""
    (root / "data").mkdir(parents=True)
    for shard in range(shards):
        rows = [
            _naturalbench_row(index, "yes_no" if index % 2 else "multiple_choice", _jpeg((10 * index, 50, 60)), _jpeg((200, 10 * index, 60)))
            for index in range(shard * rows_per_shard, (shard + 1) * rows_per_shard)
        ]
        file = _write_naturalbench(root / "data" / f"train-{shard:05d}-of-{shards:05d}.parquet", rows)
        table = pq.read_table(file)
        pq.write_table(table.rename_columns([spelling if name == "Question_Type" else name for name in table.column_names]), file)
    return root


def test_naturalbench_reads_the_current_question_type_column_and_a_folder_of_shards_as_one_benchmark(tmp_path: Path):
    import warnings

    root = _published_naturalbench(tmp_path / "NaturalBench")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete shard set loads without a warning
        for path in (root, root / "data"):
            splits = VQA.sources["naturalbench"].load(BenchmarkSpec(source="naturalbench", path=str(path), options={"validation_rows": 1}))
            assert len(splits["validation"]) == 4 and len(splits["test"]) == 20
    groups = sorted({p.payload["group"] for p in splits["test"]}, key=int)
    assert groups == ["1", "2", "3", "4", "5"]
    last = next(p for p in splits["test"] if p.payload["group"] == "5")
    assert (Path(last.payload["parquet"]).name, last.payload["row"]) == ("train-00002-of-00003.parquet", 1)
    assert last.payload["answer_type"] == "yes_no"
    assert images.ImageStore(tmp_path / "home").path(last.payload).is_file()  # the image comes from its shard


def test_an_incomplete_naturalbench_shard_set_loads_with_a_warning_naming_the_missing_shards(tmp_path: Path):
    from dataenvgym_dagster.domain.vqa.naturalbench import IncompleteShardsWarning

    root = _published_naturalbench(tmp_path / "NaturalBench", spelling="Question_Type")
    (root / "data" / "train-00001-of-00003.parquet").unlink()
    with pytest.warns(IncompleteShardsWarning, match=r"2 of the 3 shards of 'train'; missing train-00001-of-00003.parquet"):
        splits = VQA.sources["naturalbench"].load(BenchmarkSpec(source="naturalbench", path=str(root)))
    assert len(splits["validation"]) + len(splits["test"]) == 16
    with pytest.warns(IncompleteShardsWarning, match=r"1 of the 3 shards of 'train'; missing train-00001-of-00003.parquet, train-00002-of-00003.parquet"):
        VQA.sources["naturalbench"].load(BenchmarkSpec(source="naturalbench", path=str(root / "data" / "train-00000-of-00003.parquet")))


def test_a_naturalbench_index_repeated_across_shards_names_both_places(tmp_path: Path):
    root = _published_naturalbench(tmp_path / "NaturalBench", shards=1)
    shutil.copy(root / "data" / "train-00000-of-00001.parquet", root / "data" / "copy.parquet")
    with pytest.raises(BenchmarkFormatError, match=r"train-00000-of-00001.parquet, row 0 repeats Index 0 of NaturalBench file .*copy.parquet, row 0"):
        VQA.sources["naturalbench"].load(BenchmarkSpec(source="naturalbench", path=str(root)))
