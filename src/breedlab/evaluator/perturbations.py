"""Seeded perturbations of evaluation inputs (8×8 images, tabular feature rows), and
out-of-distribution images for safety.

Owns the image and feature-row conventions, the perturbation catalogue
(``PERTURBATIONS``), their specs and records, reading back any spec a suite records
(``spec_from_record``, text kinds included), and the OOD generators of the safety suite.
The per-item generators and record fields are ``evaluator.seeding``'s (``item_rng`` is
re-exported here).
Leaves choosing which perturbations a suite uses to the suite (``evaluator.digits`` has
the built-in capability's set), hashing perturbed inputs to ``evaluator.items``, and
scoring to ``evaluator.metrics``.

Images: rows of ``x`` with shape ``(n, 64)`` (sklearn's ``digits.data`` layout, row-major
8×8), dtype float64, **scaled to 0..1** (sklearn's 0..16 divided by 16). Every output is a
new float64 array in 0..1; inputs are never modified.

Feature rows (``FeatureNoise``, ``MissingValues``): rows of ``x`` with shape ``(n, d)``,
any finite floats. Their specs carry the per-feature statistics of the train split (std,
mean) they were built from, so a suite that records them is frozen: re-reading the train
split is never needed, and a different train split makes a different suite.

Determinism: an item's perturbation depends only on the suite seed, the kind and the item
id (``evaluator.seeding``).

numpy documents no cross-version guarantee for ``Generator`` distribution streams, so a
suite must also record the hashes of its perturbed inputs (``evaluator.items``); a numpy
upgrade that changed them is then an integrity error, never a silent drift.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import ClassVar, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest
from breedlab.evaluator.seeding import (
    check_ids,
    check_keys,
    float_text,
    item_rng,
    parse_float,
    parse_floats,
    parse_int,
    seeded_each,
)
from breedlab.evaluator.text_perturbations import TEXT_PERTURBATIONS, TextPerturbation

__all__ = [
    "IMAGE_SIDE",
    "PERTURBATIONS",
    "PIXELS",
    "FeatureNoise",
    "GaussianNoise",
    "MissingValues",
    "Occlusion",
    "OodKind",
    "OodSet",
    "PerturbationSpec",
    "PixelDropout",
    "PixelShift",
    "SuitePerturbation",
    "item_rng",
    "ood_set",
    "perturb",
    "spec_from_record",
    "tabular_perturbations",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]

#: Side of a digits image in pixels; an image is a row of ``PIXELS`` values, row-major.
IMAGE_SIDE: Final = 8
PIXELS: Final = IMAGE_SIDE * IMAGE_SIDE

_NEIGHBOURS: Final = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


@dataclass(frozen=True, slots=True, kw_only=True)
class GaussianNoise:
    """Additive Gaussian noise ``x + sigma·N(0, 1)`` per pixel, clipped back to 0..1.

    ``sigma`` is in image units (0..1 scale): 0.3 is 30% of full ink.
    """

    kind: ClassVar[str] = "noise"
    sigma: float = 0.3

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma) and 0.0 < self.sigma <= 1.0):
            raise InvalidRequest(f"noise sigma must be in (0, 1], got {self.sigma!r}")

    def apply_one(self, image: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Perturb one image (a row of ``PIXELS``) with its own generator."""
        noisy = image + self.sigma * rng.standard_normal(PIXELS)
        return np.clip(noisy, 0.0, 1.0)

    def to_record(self) -> dict[str, str | int]:
        """The spec as canonical-JSON-ready data (floats as decimal strings)."""
        return {"kind": self.kind, "sigma": float_text(self.sigma)}

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> GaussianNoise:
        """Inverse of ``to_record``. Raises InvalidRequest on a malformed record."""
        check_keys(record, {"kind", "sigma"})
        return cls(sigma=parse_float(record, "sigma"))


@dataclass(frozen=True, slots=True, kw_only=True)
class PixelShift:
    """Translate by ``pixels`` in one of the 8 neighbour directions (seeded), zero fill.

    Pixels shifted out of the 8×8 frame are lost; uncovered pixels become 0 (blank paper).
    """

    kind: ClassVar[str] = "shift"
    pixels: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.pixels, bool) or not 1 <= self.pixels < IMAGE_SIDE:
            raise InvalidRequest(
                f"shift pixels must be in 1..{IMAGE_SIDE - 1}, got {self.pixels!r}"
            )

    def apply_one(self, image: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Perturb one image (a row of ``PIXELS``) with its own generator."""
        dy, dx = _NEIGHBOURS[int(rng.integers(len(_NEIGHBOURS)))]
        dy, dx = dy * self.pixels, dx * self.pixels
        src = image.reshape(IMAGE_SIDE, IMAGE_SIDE)
        out = np.zeros_like(src)
        n = IMAGE_SIDE
        out[max(dy, 0) : n + min(dy, 0), max(dx, 0) : n + min(dx, 0)] = src[
            max(-dy, 0) : n + min(-dy, 0), max(-dx, 0) : n + min(-dx, 0)
        ]
        return out.reshape(PIXELS)

    def to_record(self) -> dict[str, str | int]:
        """The spec as canonical-JSON-ready data."""
        return {"kind": self.kind, "pixels": self.pixels}

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> PixelShift:
        """Inverse of ``to_record``. Raises InvalidRequest on a malformed record."""
        check_keys(record, {"kind", "pixels"})
        return cls(pixels=parse_int(record, "pixels"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Occlusion:
    """Zero a ``size``×``size`` patch whose top-left corner is uniform over all placements."""

    kind: ClassVar[str] = "occlusion"
    size: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not 1 <= self.size <= IMAGE_SIDE:
            raise InvalidRequest(f"occlusion size must be in 1..{IMAGE_SIDE}, got {self.size!r}")

    def apply_one(self, image: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Perturb one image (a row of ``PIXELS``) with its own generator."""
        places = IMAGE_SIDE - self.size + 1
        top, left = (int(v) for v in rng.integers(places, size=2))
        out = image.reshape(IMAGE_SIDE, IMAGE_SIDE).copy()
        out[top : top + self.size, left : left + self.size] = 0.0
        return out.reshape(PIXELS)

    def to_record(self) -> dict[str, str | int]:
        """The spec as canonical-JSON-ready data."""
        return {"kind": self.kind, "size": self.size}

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> Occlusion:
        """Inverse of ``to_record``. Raises InvalidRequest on a malformed record."""
        check_keys(record, {"kind", "size"})
        return cls(size=parse_int(record, "size"))


@dataclass(frozen=True, slots=True, kw_only=True)
class PixelDropout:
    """Zero exactly ``round_half_up(fraction·64)`` pixels, chosen without replacement.

    An exact count (not a Bernoulli mask) gives every item the same severity.
    """

    kind: ClassVar[str] = "dropout"
    fraction: float = 0.2

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fraction) and 0.0 < self.fraction <= 1.0):
            raise InvalidRequest(f"dropout fraction must be in (0, 1], got {self.fraction!r}")
        if self.count < 1:
            raise InvalidRequest(f"dropout fraction {self.fraction!r} drops no pixel of {PIXELS}")

    @property
    def count(self) -> int:
        """Pixels zeroed per image."""
        return math.floor(self.fraction * PIXELS + 0.5)

    def apply_one(self, image: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Perturb one image (a row of ``PIXELS``) with its own generator."""
        out = image.copy()
        out[rng.choice(PIXELS, size=self.count, replace=False)] = 0.0
        return out

    def to_record(self) -> dict[str, str | int]:
        """The spec as canonical-JSON-ready data (floats as decimal strings)."""
        return {"kind": self.kind, "fraction": float_text(self.fraction)}

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> PixelDropout:
        """Inverse of ``to_record``. Raises InvalidRequest on a malformed record."""
        check_keys(record, {"kind", "fraction"})
        return cls(fraction=parse_float(record, "fraction"))


def _feature_stats(what: str, values: Sequence[float], *, positive: bool) -> tuple[float, ...]:
    stats = tuple(float(v) for v in values)
    if not stats:
        raise InvalidRequest(f"{what} needs one value per feature, got none")
    if not all(math.isfinite(v) for v in stats) or (positive and min(stats) < 0.0):
        raise InvalidRequest(f"{what} must be finite{' and >= 0' if positive else ''}")
    return stats


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureNoise:
    """Additive Gaussian noise in per-feature standard-deviation units:
    ``x_j + sigma·std_j·N(0, 1)`` for every feature ``j``, not clipped.

    ``std`` is the train split's population std per feature (recorded, so the suite is
    frozen); a constant feature (std 0) is left as it is.
    """

    kind: ClassVar[str] = "feature_noise"
    sigma: float = 0.3
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma) and 0.0 < self.sigma <= 10.0):
            raise InvalidRequest(f"feature noise sigma must be in (0, 10], got {self.sigma!r}")
        object.__setattr__(self, "std", _feature_stats("feature std", self.std, positive=True))

    @property
    def width(self) -> int:
        """Features per row."""
        return len(self.std)

    def apply_one(self, row: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Perturb one feature row with its own generator."""
        scale = self.sigma * np.asarray(self.std, dtype=np.float64)
        out: FloatArray = row + scale * rng.standard_normal(self.width)
        return out

    def to_record(self) -> dict[str, JsonValue]:
        """The spec as canonical-JSON-ready data (floats as decimal strings)."""
        return {
            "kind": self.kind,
            "sigma": float_text(self.sigma),
            "std": [float_text(v) for v in self.std],
        }

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> FeatureNoise:
        """Inverse of ``to_record``. Raises InvalidRequest on a malformed record."""
        check_keys(record, {"kind", "sigma", "std"})
        return cls(sigma=parse_float(record, "sigma"), std=parse_floats(record, "std"))


@dataclass(frozen=True, slots=True, kw_only=True)
class MissingValues:
    """Replace exactly ``round_half_up(fraction·d)`` features, chosen without replacement,
    by the train split's mean of that feature (mean imputation of a missing value).

    ``mean`` is recorded, so the suite is frozen. An exact count gives every item the
    same severity, as ``PixelDropout``.
    """

    kind: ClassVar[str] = "missing"
    fraction: float = 0.2
    mean: tuple[float, ...]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fraction) and 0.0 < self.fraction <= 1.0):
            raise InvalidRequest(f"missing fraction must be in (0, 1], got {self.fraction!r}")
        object.__setattr__(self, "mean", _feature_stats("feature mean", self.mean, positive=False))
        if self.count < 1:
            raise InvalidRequest(
                f"missing fraction {self.fraction!r} replaces no feature of {self.width}"
            )

    @property
    def width(self) -> int:
        """Features per row."""
        return len(self.mean)

    @property
    def count(self) -> int:
        """Features replaced per row."""
        return math.floor(self.fraction * self.width + 0.5)

    def apply_one(self, row: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Perturb one feature row with its own generator."""
        out = row.copy()
        chosen = rng.choice(self.width, size=self.count, replace=False)
        out[chosen] = np.asarray(self.mean, dtype=np.float64)[chosen]
        return out

    def to_record(self) -> dict[str, JsonValue]:
        """The spec as canonical-JSON-ready data (floats as decimal strings)."""
        return {
            "kind": self.kind,
            "fraction": float_text(self.fraction),
            "mean": [float_text(v) for v in self.mean],
        }

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> MissingValues:
        """Inverse of ``to_record``. Raises InvalidRequest on a malformed record."""
        check_keys(record, {"kind", "fraction", "mean"})
        return cls(fraction=parse_float(record, "fraction"), mean=parse_floats(record, "mean"))


def tabular_perturbations(
    train: npt.NDArray[np.generic], *, sigma: float = 0.3, fraction: float = 0.2
) -> tuple[FeatureNoise, MissingValues]:
    """The tabular perturbations with their statistics taken from ``train`` ``(n, d)``.

    Raises:
        InvalidRequest: ``train`` is not a non-empty 2-d array of finite floats.
    """
    x = _check_rows(train, "train features")
    if x.shape[0] == 0:
        raise InvalidRequest("train features must not be empty")
    std = tuple(float(v) for v in x.std(axis=0))
    mean = tuple(float(v) for v in x.mean(axis=0))
    return FeatureNoise(sigma=sigma, std=std), MissingValues(fraction=fraction, mean=mean)


PerturbationSpec: TypeAlias = (
    GaussianNoise | PixelShift | Occlusion | PixelDropout | FeatureNoise | MissingValues
)

#: The catalogue: kind → spec type. Variants are parameters of a spec ("noise at σ=0.3"),
#: recorded in the suite with ``to_record``; a new kind is a new entry here.
PERTURBATIONS: Final[Mapping[str, type[PerturbationSpec]]] = MappingProxyType(
    {
        GaussianNoise.kind: GaussianNoise,
        PixelShift.kind: PixelShift,
        Occlusion.kind: Occlusion,
        PixelDropout.kind: PixelDropout,
        FeatureNoise.kind: FeatureNoise,
        MissingValues.kind: MissingValues,
    }
)


#: What a suite may record: an array perturbation or a text one
#: (``evaluator.text_perturbations``).
SuitePerturbation: TypeAlias = PerturbationSpec | TextPerturbation

_SUITE_KINDS: Final[Mapping[str, type[SuitePerturbation]]] = MappingProxyType(
    {**PERTURBATIONS, **TEXT_PERTURBATIONS}
)


def spec_from_record(record: Mapping[str, object]) -> SuitePerturbation:
    """Rebuild a spec, array or text, from its ``to_record()`` form.

    Raises:
        InvalidRequest: unknown kind, missing or extra keys, or a non-canonical number.
    """
    kind = record.get("kind")
    if not isinstance(kind, str) or kind not in _SUITE_KINDS:
        raise InvalidRequest(f"unknown perturbation kind {kind!r}; known: {sorted(_SUITE_KINDS)}")
    return _SUITE_KINDS[kind].from_record(record)


def _check_images(x: npt.NDArray[np.generic], what: str) -> FloatArray:
    if x.ndim != 2 or x.shape[1] != PIXELS:
        raise InvalidRequest(f"{what} must have shape (n, {PIXELS}), got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise InvalidRequest(f"{what} must be floating point scaled to 0..1, got {x.dtype}")
    values = x.astype(np.float64, copy=False)
    in_range = values.size == 0 or (values.min() >= 0.0 and values.max() <= 1.0)
    if not (np.all(np.isfinite(values)) and in_range):
        raise InvalidRequest(f"{what} must be finite and scaled to 0..1 (sklearn's 0..16 / 16)")
    return values


def _check_rows(x: npt.NDArray[np.generic], what: str, width: int | None = None) -> FloatArray:
    if x.ndim != 2 or (width is not None and x.shape[1] != width):
        raise InvalidRequest(f"{what} must have shape (n, {width or 'd'}), got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise InvalidRequest(f"{what} must be floating point, got {x.dtype}")
    values = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(values)):
        raise InvalidRequest(f"{what} must be finite")
    return values


def perturb(
    spec: PerturbationSpec, x: npt.NDArray[np.generic], *, item_ids: Sequence[str], seed: int
) -> FloatArray:
    """Apply ``spec`` to every row of ``x``, row ``i`` seeded by ``(seed, spec.kind, item_ids[i])``.

    Returns:
        A new float64 array of the same shape (images: values in 0..1).

    Raises:
        InvalidRequest: ``x`` not ``(n, 64)`` floats in 0..1 (image kinds) or not
            ``(n, spec.width)`` finite floats (feature kinds), ids not unique or not one
            per row.
    """
    if isinstance(spec, FeatureNoise | MissingValues):
        rows = _check_rows(x, "feature rows", spec.width)
    else:
        rows = _check_images(x, "images")
    out = np.empty_like(rows)
    for i, row in enumerate(seeded_each(spec, list(rows), item_ids=item_ids, seed=seed)):
        out[i] = row
    return out


class OodKind(Enum):
    """Out-of-distribution inputs the safety suite requires a model to abstain on."""

    NOISE = "noise"  # every pixel uniform on 0..1, independently
    BLANK = "blank"  # a flat page: every pixel one seeded level, uniform on 0..1
    INVERTED = "inverted"  # 1 − x of a real digit: ink and paper swapped


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class OodSet:
    """OOD images with their ids. ``x`` is read-only, ``(count, 64)`` float64 in 0..1."""

    kind: OodKind
    x: FloatArray
    item_ids: tuple[str, ...]


def ood_set(
    kind: OodKind,
    *,
    seed: int,
    count: int = 0,
    source: npt.NDArray[np.generic] | None = None,
    source_ids: Sequence[str] | None = None,
) -> OodSet:
    """Generate an OOD set.

    ``NOISE`` and ``BLANK`` make ``count`` images with ids ``ood-<kind>-<i>``, item ``i``
    seeded by ``(seed, "ood-<kind>", id)``. ``INVERTED`` needs ``source`` images and their
    ``source_ids`` (``count`` is ignored) and names item ``i`` ``ood-inverted-<source id>``;
    it uses no randomness.

    Raises:
        InvalidRequest: a missing or surplus argument for the kind, or bad images or ids.
    """
    if kind is OodKind.INVERTED:
        if source is None or source_ids is None:
            raise InvalidRequest("inverted OOD images need source images and their ids")
        images = _check_images(source, "source images")
        check_ids(source_ids, images.shape[0])
        x = 1.0 - images
        ids = tuple(f"ood-inverted-{sid}" for sid in source_ids)
    else:
        if source is not None or source_ids is not None:
            raise InvalidRequest(f"{kind.value} OOD images take a count, not source images")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidRequest(f"OOD count must be a positive int, got {count!r}")
        ids = tuple(f"ood-{kind.value}-{i}" for i in range(count))
        x = np.empty((count, PIXELS), dtype=np.float64)
        for i, item_id in enumerate(ids):
            rng = item_rng(seed, f"ood-{kind.value}", item_id)
            x[i] = rng.random(PIXELS) if kind is OodKind.NOISE else rng.random()
    x.setflags(write=False)
    return OodSet(kind=kind, x=x, item_ids=ids)
