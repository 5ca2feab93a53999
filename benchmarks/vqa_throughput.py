"""VQA throughput: procedural images rendered per second, and evaluation images per second batched vs one at a time.

The student is the shipped catalogue's tiny PaliGemma architecture (random weights: speed does
not depend on what it learnt), built and saved in a temporary home and loaded back with
``from_pretrained``; the problems are the procedural source's. The reference evaluated one
example at a time; ``--batch-size`` images share one ``generate`` call here.

    .venv/bin/python benchmarks/vqa_throughput.py [--images 256] [--batch-size 64] [--renders 2000] [--threads 2]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from dataenvgym_dagster.domain.registry import get_domain
from dataenvgym_dagster.domain.types import Problem
from dataenvgym_dagster.domain.vqa.images import ImageStore
from dataenvgym_dagster.experiments import load_catalog
from dataenvgym_dagster.loop.steps import student_texts
from dataenvgym_dagster.machinery.student import paligemma
from dataenvgym_dagster.machinery.student.backend import StudentWeights
from dataenvgym_dagster.machinery.student.settings import StudentSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256, help="evaluation images per mode")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--renders", type=int, default=2_000, help="procedural problems rendered (and hashed) for the render rate")
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()
    domain = get_domain("vqa")
    skills = domain.taxonomy.skills
    rng = random.Random(0)

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        started = time.perf_counter()
        problems = [
            Problem(example_id=f"p/{i}", skill=skills[i % len(skills)], **domain.sample(skills[i % len(skills)], rng).model_dump())
            for i in range(arguments.renders)
        ]
        sampled = time.perf_counter() - started
        store = ImageStore(home)
        started = time.perf_counter()
        for problem in problems:
            store.path(problem.payload)
        written = time.perf_counter() - started
        print(f"procedural source: {arguments.renders / sampled:,.0f} problems/s rendered, PNG-encoded and hashed in memory; "
              f"{arguments.renders / written:,.0f} images/s rendered again and written under the home")

        settings = load_catalog().domain("vqa").base_student
        examples = paligemma.visual_examples(student_texts(domain, problems[: arguments.images], StudentSpec(), home))
        processor = paligemma.build_processor(text for e in examples for text in (e.prefix, e.suffix))
        model = paligemma.build_student(settings.architecture, processor, seed=0)
        paligemma.save_student(model, processor, home / "student")
        model, processor = paligemma.load_student(StudentWeights(model=str(home / "student")))
        print(f"student: tiny PaliGemma, {sum(p.numel() for p in model.parameters()):,} parameters, "
              f"{processor.image_seq_length} image tokens, {arguments.threads} threads")
        quiet = lambda message: None
        rates = {}
        for label, batch_size in (("one at a time", 1), (f"batched ({arguments.batch_size})", arguments.batch_size)):
            _, report = paligemma.complete(model, processor, examples, 3, batch_size=batch_size, threads=arguments.threads, progress=quiet)
            rates[label] = report.prompts_per_second
            print(f"evaluation, {label}: {report.prompts_per_second:,.1f} images/s ({report.seconds:.1f} s for {report.prompts} images)")
        one, batched = rates.values()
        print(f"batched decoding is {batched / one:.1f}x one-at-a-time")


if __name__ == "__main__":
    main()
