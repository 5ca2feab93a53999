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
    """The option a completion picks, as its letter (``A``, ``B`` …), or '' when it names none or several.

    In order: a completion that is a letter (``B``, ``(b)``, ``b.``) or starts with a marked one
    (``(b) …``, ``B. …``, ``b: …``); the one option whose text it names (``a horse`` or ``A horse``
    is the option "a horse", whatever the letters); an option letter standing as a capital word
    (``B``, ``The answer is B``). A lower-case ``a`` is the article, never option A, unless marked
    (NaturalBench's own extraction, which reads any ``a`` as option A, differs here).
    """
    letters = [chr(ord("A") + i) for i in range(len(options))]
    stripped = completion.strip()
    marked = re.match(r"^\(([A-Za-z])\)|^([A-Za-z])[).:](?:\s|$)|^([A-Za-z])$", stripped)
    if marked:
        letter = next(group for group in marked.groups() if group).upper()
        if letter in letters:
            return letter
    said = f" {normalise(stripped)} "
    named = [letter for letter, option in zip(letters, options, strict=True) if normalise(option) and f" {normalise(option)} " in said]
    if len(named) == 1:
        return named[0]
    # As NaturalBench's own extraction: the first option letter standing as a word (capitals only).
    standing = re.search(rf"\b([{''.join(letters)}])\b", stripped)
    return standing[1] if standing else ""
