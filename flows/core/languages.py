"""Language tags and NER pipeline names, as the settings validate them and the entity stage routes by them."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

_LANGUAGE_TAG = re.compile(r"([a-z]{2,3})(?:[-_][a-z0-9]{1,8})*")
# BCP 47 codes that name no language: undetermined, multiple, no linguistic content, uncoded.
_NO_LANGUAGE = frozenset({"und", "mul", "zxx", "mis"})


def language_tag(tag: str | None) -> str | None:
    """The primary subtag of a language tag, lower-case ('fr-FR', 'FR', 'en_US' -> 'fr', 'fr', 'en'); else None."""
    if not tag:
        return None
    m = _LANGUAGE_TAG.fullmatch(tag.strip().lower())
    if m is None or m.group(1) in _NO_LANGUAGE:
        return None
    return m.group(1)


def pipeline_installed(name: str) -> bool:
    """Whether spacy.load(name) can find the pipeline: an installed package or a pipeline directory."""
    if name.isidentifier():
        return importlib.util.find_spec(name) is not None
    return (Path(name) / "config.cfg").is_file()
