"""Greedy completions and answer losses with vLLM on a GPU (the ``gpu`` extra), adapters by ``LoRARequest``.

vLLM is imported when this runs, never at import time: the CPU install does not have it.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence

from dataenvgym_dagster.domain.types import StudentText
from dataenvgym_dagster.machinery.student.backend import Completion, GenerationReport, Progress, StudentWeights
from dataenvgym_dagster.machinery.student.settings import StudentSpec

_ENGINES: dict[tuple, object] = {}  # one engine per base model and settings: loading one takes minutes
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
            "student.generation.backend is vllm but vLLM is not installed; install the GPU extra "
            "(pip install -e '.[gpu]') on a CUDA machine, or set generation.backend: hf"
        ) from error
    return vllm, LoRARequest


def engine(weights: StudentWeights, spec: StudentSpec, max_model_len: int | None = None):
    """A vLLM engine for the base model of ``weights`` (LoRA enabled when the student trains adapters)."""
    vllm, _ = _vllm()
    key = (weights.model, weights.revision, spec.dtype, spec.lora.r if spec.lora else None, max_model_len)
    if key not in _ENGINES:
        _ENGINES.clear()  # one base model on the GPU at a time
        options = {"enable_lora": True, "max_lora_rank": max_lora_rank(spec.lora.r), "max_loras": 1} if spec.lora else {}
        _ENGINES[key] = vllm.LLM(
            model=weights.model, revision=weights.revision, dtype=spec.dtype,
            max_model_len=max_model_len, seed=0, **options,
        )
    return _ENGINES[key]


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

    vllm, LoRARequest = _vllm()
    revision = None if weights.adapter else weights.revision
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(weights.adapter or weights.model, revision=revision))
    llm = engine(weights, spec)
    # One stable id per adapter folder, so vLLM caches it while the same adapter is evaluated.
    lora = None
    if weights.adapter is not None:
        lora = LoRARequest(weights.adapter.name, zlib.crc32(str(weights.adapter).encode()) % (1 << 30) + 1, str(weights.adapter))
    chat = spec.prompt_format == "chat"
    started = time.perf_counter()
    prompts = encode_prompts(tokenizer, [text.prompt for text in texts], chat)
    greedy = vllm.SamplingParams(temperature=0.0, max_tokens=spec.generation.max_new_tokens)
    generated = llm.generate([{"prompt_token_ids": ids} for ids in prompts], greedy, lora_request=lora, use_tqdm=False)
    features = tokenize_pairs(tokenizer, [(text.prompt, text.target) for text in texts], chat=chat)
    scoring = vllm.SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0)
    scored = llm.generate([{"prompt_token_ids": f["input_ids"]} for f in features], scoring, lora_request=lora, use_tqdm=False)
    completions = []
    generated_tokens = 0
    for output, score, feature in zip(generated, scored, features, strict=True):
        logprobs = score.prompt_logprobs  # position 0 is None; position i: {token id: Logprob} incl. the actual token
        target = [i for i, label in enumerate(feature["labels"]) if label != -100]
        nll = [-logprobs[i][feature["input_ids"][i]].logprob for i in target]
        generated_tokens += len(output.outputs[0].token_ids)
        completions.append(Completion(text=output.outputs[0].text, target_loss=sum(nll) / len(nll)))
    seconds = time.perf_counter() - started
    progress(f"evaluated {len(completions)} prompts with vLLM in {seconds:.1f} s")
    return completions, GenerationReport(
        prompts=len(texts), seconds=seconds, prompts_per_second=len(texts) / seconds,
        generated_tokens=generated_tokens, backend="vllm",
    )
