"""The seed corpus: files whose first token is `date`, then an ISO date, then the article text."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from flows.core.errors import INTERNAL_ERROR, SeedFormatError, describe

_HEADER = re.compile(r"\A\s*date\s+(\d{4}-\d{2}-\d{2})\s+", re.I)


@dataclass(frozen=True)
class Seed:
    name: str  # file name, the seed's key
    published: date
    text: str
    file_hash: str

    @property
    def url(self) -> str:
        """The seed's stand-in URL, its natural key among articles."""
        return f"seed:{self.name}"


def parse_seed(name: str, raw: str) -> Seed:
    body = raw.removeprefix("\ufeff")  # editors on Windows save UTF-8 with a byte-order mark
    m = _HEADER.match(body)
    if not m:
        raise SeedFormatError(f"{name}: expected the file to start with 'date YYYY-MM-DD'")
    try:
        published = date.fromisoformat(m.group(1))
    except ValueError:
        raise SeedFormatError(f"{name}: {m.group(1)!r} is not a valid date") from None
    text = body[m.end():].strip()
    if not text:
        raise SeedFormatError(f"{name}: no text after the date")
    return Seed(name, published, text, hashlib.sha256(raw.encode()).hexdigest())


@dataclass(frozen=True)
class SeedError:
    """A seed file that could not be loaded, recorded as its `page_fetches` row (url `seed:<file>`)."""

    name: str
    code: str  # seed_format | not_utf8 | internal_error
    detail: str

    @property
    def url(self) -> str:
        return f"seed:{self.name}"

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


def read_seeds(folder: Path) -> tuple[list[Seed], list[SeedError]]:
    """All `*.txt` seeds in the folder, sorted by name, and one error per file that could not be read.

    One file's problem, expected or not, is that file's error; the others still load.
    """
    seeds: list[Seed] = []
    errors: list[SeedError] = []
    for path in sorted(folder.glob("*.txt")):
        try:
            seeds.append(parse_seed(path.name, path.read_text(encoding="utf-8")))
        except SeedFormatError as exc:
            errors.append(SeedError(path.name, "seed_format", str(exc).removeprefix(f"{path.name}: ")))
        except UnicodeDecodeError:
            errors.append(SeedError(path.name, "not_utf8", "not UTF-8 text"))
        except Exception as exc:
            errors.append(SeedError(path.name, INTERNAL_ERROR, describe(exc)))
    return seeds, errors
