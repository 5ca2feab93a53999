"""Reading a short answer out of a student's completion: normalisation, yes/no and multiple choice."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

ARTICLES = {"a", "an", "the"}
NUMBER_WORDS = {w: str(i) for i, w in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"])}
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation if c not in "'"})


def normalise(text: str) -> str:
    """Lower case, punctuation and articles removed, number words as digits, single spaces (GQA/VQA style)."""
    words = text.lower().replace("'", "").translate(_PUNCTUATION).split()
    return " ".join(NUMBER_WORDS.get(word, word) for word in words if word not in ARTICLES)


def extract_yes_no(completion: str) -> str:
    """``yes`` or ``no``: the first of the two words in the completion; '' if neither appears."""
    match = re.search(r"\b(yes|no)\b", completion.lower())
    return match[1] if match else ""


def extract_choice(completion: str, options: Sequence[str]) -> str:
    """The option a completion picks: a leading letter (``B``, ``(b)``, ``B.``), an option letter later on, or one option's text.

    Returns the option's letter (``A``, ``B`` …) or '' when the completion names none or several.
    """
    letters = [chr(ord("A") + i) for i in range(len(options))]
    stripped = completion.strip()
    match = re.match(r"^\(?([A-Za-z])[\).:]?(?:\s|$)", stripped)
    if match and match[1].upper() in letters:
        return match[1].upper()
    # As NaturalBench's own extraction: the first option letter standing as a word (upper case
    # only, so the article "a" is not read as option A).
    standing = re.search(rf"\b([{''.join(letters)}])\b", stripped)
    if standing:
        return standing[1]
    said = normalise(stripped)
    named = [letter for letter, option in zip(letters, options, strict=True) if normalise(option) and normalise(option) in said]
    return named[0] if len(named) == 1 else ""
