"""The seed corpus: files whose first token is `date`, then an ISO date, then the article text."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from flows.core.errors import INTERNAL_ERROR, SeedFormatError, describe
from flows.core.files import FileTooLargeError, NotRegularFileError, read_bounded
from flows.core.records import EARLIEST_PUBLISHED

MAX_SEED_BYTES = 5_000_000  # [fetch] max_page_bytes by default (flows/warehouse/runstate.py): a seed is one article

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


def parse_seed(name: str, raw: str, today: date | None = None) -> Seed:
    """A seed file's date and text; SeedFormatError when its header or date is wrong (a date before 1900 or after
    `today` (UTC) + 1 day is a typo, and would become the story of the day or the report's latest day)."""
    body = raw.removeprefix("\ufeff")  # editors on Windows save UTF-8 with a byte-order mark
    m = _HEADER.match(body)
    if not m:
        raise SeedFormatError(f"{name}: expected the file to start with 'date YYYY-MM-DD'")
    try:
        published = date.fromisoformat(m.group(1))
    except ValueError:
        raise SeedFormatError(f"{name}: {m.group(1)!r} is not a valid date") from None
    latest = (today or datetime.now(UTC).date()) + timedelta(days=1)
    if not EARLIEST_PUBLISHED.date() <= published <= latest:
        raise SeedFormatError(f"{name}: {published} is not a plausible publication date "
                              f"({EARLIEST_PUBLISHED.date()} to {latest})")
    text = body[m.end():].strip()
    if not text:
        raise SeedFormatError(f"{name}: no text after the date")
    return Seed(name, published, text, hashlib.sha256(raw.encode()).hexdigest())


@dataclass(frozen=True)
class SeedError:
    """A seed file that could not be loaded, recorded as its `page_fetches` row (url `seed:<file>`)."""

    name: str
    code: str  # seed_format | not_utf8 | bad_name | not_a_file | too_large | internal_error
    detail: str

    @property
    def url(self) -> str:
        return f"seed:{self.name}"

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


class _RefusedError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def _read(path: Path, max_bytes: int) -> str:
    """The file's text; a FIFO (which would wait for a writer for ever), a device (/dev/zero behind a link) or a
    folder is refused, as is a file over `max_bytes`."""
    try:
        return read_bounded(path, max_bytes).decode("utf-8")
    except NotRegularFileError:
        raise _RefusedError("not_a_file", "not a regular file (a folder, a pipe or a device)") from None
    except FileTooLargeError:
        raise _RefusedError("too_large", f"over {max_bytes:,} bytes") from None


def _printable(name: str) -> str:
    """A file name as UTF-8 text: bytes that are not UTF-8 (kept by Python as surrogates) as U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_seeds(folder: Path, max_bytes: int = MAX_SEED_BYTES) -> tuple[list[Seed], list[SeedError]]:
    """All `*.txt` seeds in the folder, sorted by name, and one error per file that could not be read.

    One file's problem, expected or not, is that file's error; the others still load.
    """
    seeds: list[Seed] = []
    errors: list[SeedError] = []
    for path in sorted(folder.glob("*.txt")):
        name = _printable(path.name)
        try:
            if name != path.name:  # it could be neither stored nor named again: refused, not renamed
                raise _RefusedError("bad_name", "the file name is not UTF-8: rename the file")
            seeds.append(parse_seed(name, _read(path, max_bytes)))
        except _RefusedError as exc:
            errors.append(SeedError(name, exc.code, str(exc)))
        except SeedFormatError as exc:
            errors.append(SeedError(name, "seed_format", str(exc).removeprefix(f"{name}: ")))
        except UnicodeDecodeError:
            errors.append(SeedError(name, "not_utf8", "not UTF-8 text"))
        except Exception as exc:
            errors.append(SeedError(name, INTERNAL_ERROR, describe(exc)))
    return seeds, errors
