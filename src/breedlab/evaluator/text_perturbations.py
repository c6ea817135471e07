"""Seeded perturbations of text inputs (issue 12: character typos, case, whitespace, word
dropout and swap), for the suites of text capabilities.

Owns the text perturbation catalogue (``TEXT_PERTURBATIONS``), its specs and records, and
:func:`perturb_texts`. Each item's randomness comes from
``evaluator.seeding.item_rng(seed, kind, item_id)`` (HELM seeds its perturbations by
instance id), so an item's perturbed text depends only on the suite seed, the kind and
the item id. Severity is an exact count per item (as ``PixelDropout``), never a
Bernoulli draw, so every item is perturbed alike.

Suites of text capabilities record these (``evaluator.design.perturbation_catalogue``);
``evaluator.perturbations.spec_from_record`` reads them back with the array kinds.

Words are maximal runs of non-whitespace; a perturbation that works on words rejoins them
with single spaces (``Whitespace`` is the one that adds spacing).
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Final, Self, TypeAlias

import numpy as np

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.evaluator.seeding import check_keys, float_text, parse_float, seeded_each

__all__ = [
    "TEXT_PERTURBATIONS",
    "CaseSwap",
    "CharTypos",
    "TextPerturbation",
    "Whitespace",
    "WordDropout",
    "WordSwap",
    "perturb_texts",
]


def _count(fraction: float, units: int) -> int:
    """``round_half_up(fraction·units)``, at least 1 when there is a unit to perturb."""
    return min(units, max(1, math.floor(fraction * units + 0.5))) if units else 0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Fraction:
    """A spec with one parameter, ``fraction``; subclasses set ``kind`` and ``apply_one``."""

    kind: ClassVar[str] = ""
    fraction: float = 0.1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fraction) and 0.0 < self.fraction <= 1.0):
            raise InvalidRequest(f"{self.kind} fraction must be in (0, 1], got {self.fraction!r}")

    def to_record(self) -> dict[str, JsonValue]:
        """The spec as canonical-JSON-ready data (the fraction as a decimal string)."""
        return {"kind": self.kind, "fraction": float_text(self.fraction)}

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> Self:
        """Inverse of ``to_record``. Raises InvalidRequest on a malformed record."""
        check_keys(record, {"kind", "fraction"})
        return cls(fraction=parse_float(record, "fraction"))

    def _chosen(self, units: int, rng: np.random.Generator) -> list[int]:
        """``_count(fraction, units)`` distinct positions of ``units``, in draw order."""
        chosen = rng.choice(units, size=_count(self.fraction, units), replace=False)
        return [int(i) for i in chosen]


@dataclass(frozen=True, slots=True, kw_only=True)
class CharTypos(_Fraction):
    """Edit ``round_half_up(fraction·letters)`` letters (at least one): each edit deletes
    the letter, doubles it, replaces it by a random lowercase letter, or swaps it with
    the next character -- one of the four, uniformly."""

    kind: ClassVar[str] = "typos"
    fraction: float = 0.05

    def apply_one(self, text: str, rng: np.random.Generator) -> str:
        letters = [i for i, c in enumerate(text) if c.isalpha()]
        chars = list(text)
        # From the end, so earlier positions stay put.
        for i in sorted(
            (letters[k] for k in self._chosen(len(letters), rng)), reverse=True
        ):  # from the end, so earlier positions stay put
            op = int(rng.integers(4))
            if op == 0:
                del chars[i]
            elif op == 1:
                chars.insert(i, chars[i])
            elif op == 2:
                chars[i] = string.ascii_lowercase[int(rng.integers(26))]
            elif i + 1 < len(chars):
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
        return "".join(chars)


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseSwap(_Fraction):
    """Swap the case (``str.swapcase``) of ``round_half_up(fraction·words)`` words."""

    kind: ClassVar[str] = "case"
    fraction: float = 0.5

    def apply_one(self, text: str, rng: np.random.Generator) -> str:
        words = text.split()
        for i in self._chosen(len(words), rng):
            words[i] = words[i].swapcase()
        return " ".join(words)


@dataclass(frozen=True, slots=True, kw_only=True)
class Whitespace(_Fraction):
    """Widen ``round_half_up(fraction·gaps)`` of the gaps between words to 2-4 spaces."""

    kind: ClassVar[str] = "whitespace"
    fraction: float = 0.3

    def apply_one(self, text: str, rng: np.random.Generator) -> str:
        words = text.split()
        if not words:
            return ""
        gaps = [" "] * (len(words) - 1)
        for i in self._chosen(len(gaps), rng):
            gaps[i] = " " * int(rng.integers(2, 5))
        return "".join(w + g for w, g in zip(words, [*gaps, ""], strict=True))


@dataclass(frozen=True, slots=True, kw_only=True)
class WordDropout(_Fraction):
    """Delete ``round_half_up(fraction·words)`` words (at least one), never the last
    one left: a one-word text is unchanged."""

    kind: ClassVar[str] = "word_dropout"

    def apply_one(self, text: str, rng: np.random.Generator) -> str:
        words = text.split()
        count = min(_count(self.fraction, len(words)), len(words) - 1)
        dropped = set(rng.choice(len(words), size=max(count, 0), replace=False).tolist())
        return " ".join(w for i, w in enumerate(words) if i not in dropped)


@dataclass(frozen=True, slots=True, kw_only=True)
class WordSwap(_Fraction):
    """Swap ``round_half_up(fraction·words)`` adjacent word pairs (at least one when
    there are two words), each at a uniform position, one after another."""

    kind: ClassVar[str] = "word_swap"

    def apply_one(self, text: str, rng: np.random.Generator) -> str:
        words = text.split()
        if len(words) < 2:
            return " ".join(words)
        for _ in range(_count(self.fraction, len(words))):
            i = int(rng.integers(len(words) - 1))
            words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)


TextPerturbation: TypeAlias = CharTypos | CaseSwap | Whitespace | WordDropout | WordSwap

#: The text catalogue: kind → spec type (variants are parameters, as ``PERTURBATIONS``).
TEXT_PERTURBATIONS: Final[Mapping[str, type[TextPerturbation]]] = MappingProxyType(
    {s.kind: s for s in (CharTypos, CaseSwap, Whitespace, WordDropout, WordSwap)}
)


def perturb_texts(
    spec: TextPerturbation, texts: Sequence[str], *, item_ids: Sequence[str], seed: int
) -> tuple[str, ...]:
    """Apply ``spec`` to every text, text ``i`` seeded by ``(seed, spec.kind, item_ids[i])``.

    Raises:
        InvalidRequest: not one unique id per text, or a text that is not a str.
    """
    if not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("text perturbations take str inputs")
    return tuple(seeded_each(spec, texts, item_ids=item_ids, seed=seed))
