"""A tiny random text-to-image pipeline of the Stable Diffusion family, built here as a hub pipeline would be.

The same components as SDXL-Turbo's family (a ``UNet2DConditionModel`` denoiser with cross-
attention, an ``AutoencoderKL``, a CLIP text encoder and its byte-level BPE tokenizer, an Euler
ancestral scheduler with trailing timesteps), random-initialised and a few hundred kB each,
saved with ``save_pretrained`` so that the project loads it through ``from_pretrained(folder)``,
the path a hub id takes. Nothing is downloaded: the tokenizer's vocabulary is the 256 byte
symbols (and their word-final forms), with no merges.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

WIDTH = 32  # hidden size of every component: the smallest the group norms (32 groups) allow


def _byte_tokenizer() -> CLIPTokenizer:
    symbols = list(bytes_to_unicode().values())
    vocabulary = {symbol: index for index, symbol in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocabulary |= {"<|startoftext|>": len(vocabulary), "<|endoftext|>": len(vocabulary) + 1}
    return CLIPTokenizer(vocab=vocabulary, merges=[], model_max_length=32)


def save_tiny_pipeline(folder: Path, seed: int = 0) -> Path:
    """A random Stable Diffusion pipeline for 64 × 64 images (8 × 8 latents), saved at ``folder``."""
    tokenizer = _byte_tokenizer()
    if len(tokenizer) != 2 * 256 + 2:
        raise RuntimeError(f"the byte-level CLIP tokenizer has {len(tokenizer)} tokens, not 514: transformers changed its constructor")
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=32, projection_dim=WIDTH, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(WIDTH, 2 * WIDTH),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=WIDTH, attention_head_dim=8, norm_num_groups=WIDTH,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(WIDTH,) * 4, latent_channels=4, layers_per_block=1, norm_num_groups=WIDTH, sample_size=64,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=EulerAncestralDiscreteScheduler(timestep_spacing="trailing", steps_offset=1),  # SDXL-Turbo's scheduler
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)
    return folder
