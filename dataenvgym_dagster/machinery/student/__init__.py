"""Hugging Face students: a locally trained tokenizer, a tiny causal LM, training and evaluation."""

from transformers.utils import logging as _transformers_logging

# Loading and saving a 1 MB student should not draw progress bars over the run log.
_transformers_logging.disable_progress_bar()
