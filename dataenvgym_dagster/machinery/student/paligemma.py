"""A PaliGemma student: a tiny random-initialised one built here, training on (image, prefix, suffix), batched greedy answers.

The tiny student is a real ``PaliGemmaForConditionalGeneration`` (a SigLIP vision tower and a
Gemma text model) with a real ``PaliGemmaProcessor`` whose tokenizer is trained locally (the
processor adds the ``<image>`` token). Both are saved with ``save_pretrained`` and loaded with
``from_pretrained``, the path a hub id such as ``google/paligemma-3b-pt-224`` takes.

The processor builds ``<image>×N <bos> prefix \\n`` and, for training, appends ``suffix <eos>``
with labels on the suffix only (its ``token_type_ids`` are 1). Training and evaluation take
the prefix from the same :class:`VisualExample`, so they are identical by construction.

:class:`PaliGemmaBackend` is the :class:`~dataenvgym_dagster.machinery.student.backend.StudentBackend`
the loop calls: it reads :class:`StudentText` (prompt, target and one image file) and
:class:`StudentWeights`, and saves LoRA students as PEFT adapter folders, as the text students do.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    GemmaConfig,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    PreTrainedTokenizerFast,
    PrinterCallback,
    SiglipImageProcessor,
    SiglipVisionConfig,
    Trainer,
    TrainingArguments,
)
from transformers.utils import logging as transformers_logging

from dataenvgym_dagster.domain.types import StudentText
from dataenvgym_dagster.machinery.student.backend import (
    AnsweringModel,
    Completion,
    GenerationReport,
    StudentWeights,
    TrainingReport,
)
from dataenvgym_dagster.machinery.student.causal_lm import DTYPES, resolve_device
from dataenvgym_dagster.machinery.student.settings import (
    LoraSettings,
    StudentArchitecture,
    StudentSpec,
    TrainingSettings,
)
from dataenvgym_dagster.machinery.student.training import LogProgress

transformers_logging.disable_progress_bar()
transformers_logging.set_verbosity_error()  # the processor's notices repeat once per batch

Progress = Callable[[str], None]
IMAGE_SIZE = 32  # the 64 × 64 scenes, resized: 16 image tokens keep a CPU step cheap
PATCH_SIZE = 8
IMAGE_TOKEN = "<image>"
# LoRA on the language model's and the vision tower's projections (attention and MLP) and the
# multimodal projector, as the DataEnvGym paper fine-tuned PaliGemma.
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "gate_proj", "up_proj", "down_proj", "fc1", "fc2", "linear"]


@dataclass(frozen=True)
class VisualExample:
    """One image, the prefix the student reads and the suffix (answer) it is trained to write."""

    image: Path
    prefix: str
    suffix: str


def build_processor(corpus: Iterable[str], vocab_size: int = 256) -> PaliGemmaProcessor:
    """A PaliGemma processor for 32 × 32 images with a byte-pair tokenizer trained on ``corpus`` (prefixes and answers)."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    special = ["<pad>", "<eos>", "<bos>", "<unk>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special)
    tokenizer.train_from_iterator((text + "\n" for text in corpus), trainer=trainer)
    # The processor pairs prefix and suffix; type ids 1 mark the suffix, the only tokens with a loss.
    tokenizer.post_processor = processors.TemplateProcessing(single="$A:0", pair="$A:0 $B:1")
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )
    image_processor = SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    image_processor.image_seq_length = (IMAGE_SIZE // PATCH_SIZE) ** 2
    return PaliGemmaProcessor(image_processor=image_processor, tokenizer=wrapped)


def build_student(architecture: StudentArchitecture, processor: PaliGemmaProcessor, seed: int) -> PaliGemmaForConditionalGeneration:
    """A random PaliGemma: a SigLIP tower and a Gemma decoder of the architecture's width and depth."""
    torch.manual_seed(seed)
    tokenizer = processor.tokenizer
    vision = SiglipVisionConfig(
        hidden_size=architecture.hidden_size, intermediate_size=architecture.intermediate_size,
        num_hidden_layers=architecture.num_hidden_layers, num_attention_heads=architecture.num_attention_heads,
        image_size=IMAGE_SIZE, patch_size=PATCH_SIZE,
    )
    text = GemmaConfig(
        vocab_size=len(tokenizer), hidden_size=architecture.hidden_size, intermediate_size=architecture.intermediate_size,
        num_hidden_layers=architecture.num_hidden_layers, num_attention_heads=architecture.num_attention_heads,
        num_key_value_heads=1, head_dim=architecture.hidden_size // architecture.num_attention_heads,
        max_position_embeddings=max(architecture.max_position_embeddings, processor.image_seq_length + 64),
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    config = PaliGemmaConfig(
        vision_config=vision, text_config=text, image_token_index=processor.image_token_id,
        projection_dim=architecture.hidden_size, hidden_size=architecture.hidden_size,
    )
    return PaliGemmaForConditionalGeneration(config)


def load_student(
    weights: StudentWeights, dtype: torch.dtype = torch.float32, *, trainable: bool = False
) -> tuple[PaliGemmaForConditionalGeneration | PeftModel, PaliGemmaProcessor]:
    """The student at ``weights`` (a local ``save_pretrained`` folder or a hub id, with its revision), exactly as
    ``from_pretrained(model, revision=...)`` loads a hub id, and its PEFT adapter applied if there is one.

    The processor comes from the adapter's folder when there is one: training saves it beside the adapter.
    """
    source, revision = (weights.adapter, None) if weights.adapter is not None else (weights.model, weights.revision)
    processor = PaliGemmaProcessor.from_pretrained(source, revision=revision)
    model = PaliGemmaForConditionalGeneration.from_pretrained(weights.model, revision=weights.revision, dtype=dtype)
    if weights.adapter is not None:
        model = PeftModel.from_pretrained(model, weights.adapter, is_trainable=trainable)
    return model, processor


def save_student(model: PaliGemmaForConditionalGeneration | PeftModel, processor: PaliGemmaProcessor, directory: Path) -> None:
    """A whole model, or a PEFT adapter folder if ``model`` has adapters, with the processor beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    processor.save_pretrained(directory)


def _images(examples: Sequence[VisualExample]) -> list[Image.Image]:
    return [Image.open(example.image).convert("RGB") for example in examples]


def _prompts(examples: Sequence[VisualExample]) -> list[str]:
    return [IMAGE_TOKEN + example.prefix for example in examples]


def training_batch(processor: PaliGemmaProcessor, examples: Sequence[VisualExample]) -> dict[str, torch.Tensor]:
    """Inputs with labels on the suffix (and its end-of-sequence) only."""
    processor.tokenizer.padding_side = "right"
    batch = processor(
        text=_prompts(examples), images=_images(examples), suffix=[e.suffix for e in examples], return_tensors="pt", padding="longest"
    )
    return dict(batch)


def generation_batch(processor: PaliGemmaProcessor, examples: Sequence[VisualExample]) -> dict[str, torch.Tensor]:
    """Inputs for greedy decoding: the same prefixes as in training, left-padded so every row continues at the end."""
    processor.tokenizer.padding_side = "left"
    return dict(processor(text=_prompts(examples), images=_images(examples), return_tensors="pt", padding="longest"))


class _Collator:
    def __init__(self, processor: PaliGemmaProcessor) -> None:
        self.processor = processor

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return training_batch(self.processor, [row["example"] for row in rows])


def with_lora(model: PaliGemmaForConditionalGeneration, lora: LoraSettings) -> PeftModel:
    """The model with fresh trainable LoRA adapters; ``all-linear`` means the paper's projections (:data:`LORA_TARGETS`)."""
    targets = LORA_TARGETS if lora.target_modules == "all-linear" else lora.target_modules
    targets = [targets] if isinstance(targets, str) else list(targets)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets)
    return get_peft_model(model, config)


def train_student(
    model: PaliGemmaForConditionalGeneration | PeftModel,
    processor: PaliGemmaProcessor,
    examples: Sequence[VisualExample],
    settings: TrainingSettings,
    output_dir: Path,
    seed: int,
    progress: Progress = print,
    device: str = "cpu",
) -> TrainingReport:
    """Fine-tune on the examples and save to ``output_dir``: the whole model, or the PEFT adapter folder if LoRA."""
    if not examples:
        raise ValueError("no training examples: the generated dataset is empty")
    torch.set_num_threads(settings.threads)
    steps = max(1, math.ceil(len(examples) * settings.epochs / settings.batch_size))
    callback = LogProgress(progress, steps)
    arguments = TrainingArguments(
        output_dir=str(output_dir / "trainer"), per_device_train_batch_size=settings.batch_size, max_steps=steps,
        learning_rate=settings.learning_rate, warmup_steps=math.ceil(settings.warmup_ratio * steps),
        weight_decay=settings.weight_decay, lr_scheduler_type="cosine", logging_steps=max(1, steps // 10),
        save_strategy="no", report_to="none", use_cpu=device == "cpu", bf16=device == "cuda", seed=seed, data_seed=seed,
        disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False,
    )
    trainer = Trainer(
        model=model, args=arguments, train_dataset=[{"example": example} for example in examples],
        data_collator=_Collator(processor), callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    save_student(trainer.model, processor, output_dir)
    # An estimate for the training_runs table: image tokens plus about 16 text tokens per example.
    tokens = round(len(examples) * settings.epochs * (processor.image_seq_length + 16))
    return TrainingReport(
        examples=len(examples), steps=steps, tokens=tokens, seconds=seconds, tokens_per_second=tokens / seconds,
        final_loss=callback.curve[-1][1] if callback.curve else float(result.training_loss), loss_curve=callback.curve,
        trainable_parameters=sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        parameters=sum(p.numel() for p in trainer.model.parameters()),
    )


@torch.inference_mode()
def complete(
    model: PaliGemmaForConditionalGeneration,
    processor: PaliGemmaProcessor,
    examples: Sequence[VisualExample],
    max_new_tokens: int,
    batch_size: int = 64,
    threads: int = 2,
    progress: Progress = print,
) -> tuple[list[Completion], GenerationReport]:
    """Greedy answers, ``batch_size`` images at a time, and each reference answer's loss (nats/token)."""
    torch.set_num_threads(threads)
    model.eval()
    started = time.perf_counter()
    completions: list[Completion] = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        inputs = {name: value.to(model.device) for name, value in generation_batch(processor, batch).items()}
        generated = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=processor.tokenizer.pad_token_id, eos_token_id=processor.tokenizer.eos_token_id,
        )
        texts = processor.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        losses = _target_losses(model, processor, batch)
        completions += [Completion(text=text.strip(), target_loss=loss) for text, loss in zip(texts, losses, strict=True)]
        progress(f"evaluated {len(completions)}/{len(examples)} images")
    seconds = time.perf_counter() - started
    return completions, GenerationReport(prompts=len(examples), seconds=seconds, prompts_per_second=len(examples) / seconds)


def _target_losses(model: PaliGemmaForConditionalGeneration, processor: PaliGemmaProcessor, batch: Sequence[VisualExample]) -> list[float]:
    inputs = {name: value.to(model.device) for name, value in training_batch(processor, batch).items()}
    labels = inputs.pop("labels")
    logits = model(**inputs).logits
    shifted = labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), shifted, ignore_index=-100, reduction="none")
    return (losses.sum(dim=1) / (shifted != -100).sum(dim=1)).tolist()


def visual_examples(texts: Sequence[StudentText]) -> list[VisualExample]:
    """Each text as (image file, prefix, suffix); a PaliGemma reads exactly one image per prompt."""
    examples = []
    for index, text in enumerate(texts):
        if len(text.images) != 1:
            raise ValueError(
                f"student text {index} ({text.prompt[:60]!r}) has {len(text.images)} images; the PaliGemma student reads "
                "exactly one per prompt"
            )
        examples.append(VisualExample(image=Path(text.images[0]), prefix=text.prompt, suffix=text.target))
    return examples


class PaliGemmaBackend:
    """The student backend for PaliGemma (``PaliGemmaForConditionalGeneration`` + its processor)."""

    def __init__(self, spec: StudentSpec) -> None:
        self.spec = spec
        self.answering = AnsweringModel(self._load_for_answers)

    def _load_for_answers(self, weights: StudentWeights):
        model, processor = self._load(weights)
        if isinstance(model, PeftModel):
            model = model.merge_and_unload()  # same function, fewer matrix products per token
        return model, processor

    @property
    def device(self) -> str:
        return resolve_device(self.spec.device)

    def _load(self, weights: StudentWeights, *, trainable: bool = False):
        dtype = torch.float32 if self.spec.dtype in ("auto", "float32") else DTYPES[self.spec.dtype]
        model, processor = load_student(weights, dtype, trainable=trainable)
        return model.to(self.device), processor

    def pretrain_tiny(
        self,
        texts: Sequence[StudentText],
        architecture: StudentArchitecture,
        vocab_size: int,
        settings: TrainingSettings,
        output_dir: Path,
        seed: int,
        progress: Progress,
    ) -> TrainingReport:
        """A processor whose tokenizer is trained on the texts, a random tiny PaliGemma, pretrained on the texts."""
        examples = visual_examples(texts)
        processor = build_processor((text for e in examples for text in (e.prefix, e.suffix)), vocab_size)
        model = build_student(architecture, processor, seed)
        progress(f"pretraining a {sum(p.numel() for p in model.parameters()):,}-parameter PaliGemma on {len(examples):,} images")
        return train_student(model, processor, examples, settings, output_dir, seed, progress, device=self.device)

    def train(
        self,
        start: StudentWeights,
        texts: Sequence[StudentText],
        settings: TrainingSettings,
        output_dir: Path,
        seed: int,
        progress: Progress,
    ) -> TrainingReport:
        """LoRA continues ``start.adapter`` if there is one, else starts fresh adapters on ``start``; full
        fine-tuning trains every weight (merging ``start.adapter`` first)."""
        lora = self.spec.lora
        self.answering.forget()  # its memory is wanted back for training
        model, processor = self._load(start, trainable=lora is not None)
        if isinstance(model, PeftModel):
            if lora is None:
                model = model.merge_and_unload()
            else:
                progress(f"continuing the LoRA adapter at {start.adapter}")
        elif lora is not None:
            torch.manual_seed(seed)  # fresh adapters from the run's seed, not from what the process drew before
            model = with_lora(model, lora)
        return train_student(model, processor, visual_examples(texts), settings, output_dir, seed, progress, device=self.device)

    def complete(
        self, weights: StudentWeights, texts: Sequence[StudentText], progress: Progress
    ) -> tuple[list[Completion], GenerationReport]:
        model, processor = self.answering(weights)
        generation = self.spec.generation
        return complete(
            model, processor, visual_examples(texts), generation.max_new_tokens, batch_size=generation.batch_size, progress=progress
        )
