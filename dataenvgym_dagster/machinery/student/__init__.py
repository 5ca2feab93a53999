"""Hugging Face students: a locally trained tokenizer, a tiny causal LM, training and evaluation.

``settings`` is pure pydantic (the experiment catalogue imports it); the other modules import
torch and transformers.
"""
