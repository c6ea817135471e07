"""Seeded augmentation of training inputs: Gaussian noise and one-pixel shifts (images),
noise in per-feature std units and mean-imputed missing values (tabular).

Owns the training-time perturbations the ``train`` (``augment``) and ``distill``
(noisy transfer copies) operators apply, as pure tensor functions of a generator. They
mirror robustness perturbations of the evaluator's suites (Gaussian noise clipped to
the data's range; a shift by one pixel in one of the 8 neighbour directions, uncovered
pixels filled with the data's minimum, "blank paper"; tabular ``feature_noise``,
``x_j + σ·std_j·N(0, 1)`` unclipped, and ``missing``, ``round_half_up(fraction·d)``
features replaced by their mean, with the train data's population std and mean), and
are named as those perturbation kinds, so a recipe's ``augment = "{kind}"`` picks the
one a failure cluster needs. They draw from the job's seed,
never the suite's: the factory does not import the evaluator, and training on a suite's
own draws would leak it. Leaves choosing when to augment to the operators.
"""

from __future__ import annotations

import math
from enum import StrEnum

import torch

from breedlab.errors import InvalidRequest

__all__ = [
    "Augment",
    "augment_rows",
    "feature_noisy",
    "image_shape",
    "mean_imputed",
    "noisy",
    "shifted",
]

#: The 8 neighbour directions (dy, dx) of a one-pixel shift.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


class Augment(StrEnum):
    """The ``augment`` parameter of ``train``: what happens to half of each batch."""

    NONE = "none"
    NOISE = "noise"
    SHIFT = "shift"
    FEATURE_NOISE = "feature_noise"
    MISSING = "missing"


def image_shape(inputs: int, image: list[int] | None = None) -> tuple[int, int]:
    """``(height, width)`` of a flattened image row: ``image`` if given, else square.

    Raises:
        InvalidRequest: ``image`` does not multiply to ``inputs``, or no square fits.
    """
    if image is not None:
        if len(image) != 2 or image[0] * image[1] != inputs:
            raise InvalidRequest(f"image {image} does not hold {inputs} inputs")
        return image[0], image[1]
    side = math.isqrt(inputs)
    if side * side != inputs:
        raise InvalidRequest(f"{inputs} inputs are not a square image; give 'image'")
    return side, side


def noisy(
    x: torch.Tensor, sigma: float, generator: torch.Generator, low: float, high: float
) -> torch.Tensor:
    """``x + sigma·N(0, 1)`` per value, clipped to ``[low, high]`` (a new tensor)."""
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return (x + sigma * noise).clamp(low, high)


def shifted(
    x: torch.Tensor, shape: tuple[int, int], generator: torch.Generator, fill: float
) -> torch.Tensor:
    """Each row shifted one pixel in a seeded neighbour direction, uncovered pixels ``fill``."""
    n = x.shape[0]
    h, w = shape
    padded = torch.nn.functional.pad(x.reshape(n, h, w), (1, 1, 1, 1), value=fill)
    # out[i, j] = padded[i + 1 - dy, j + 1 - dx] = image[i - dy, j - dx]: moved by (dy, dx).
    views = torch.stack(
        [padded[:, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w] for dy, dx in _NEIGHBOURS]
    )
    direction = torch.randint(len(_NEIGHBOURS), (n,), generator=generator)
    return views[direction, torch.arange(n)].reshape(n, h * w)


def feature_noisy(
    x: torch.Tensor, sigma: float, std: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """``x_j + sigma·std_j·N(0, 1)`` per value of each row, not clipped (a new tensor)."""
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x + sigma * std.to(x.dtype) * noise


def mean_imputed(
    x: torch.Tensor, fraction: float, mean: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Each row with ``round_half_up(fraction·d)`` seeded features (without replacement)
    replaced by ``mean`` of that feature, at least one (a new tensor)."""
    n, d = x.shape
    count = max(1, math.floor(fraction * d + 0.5))
    order = torch.rand((n, d), generator=generator).argsort(dim=1)[:, :count]
    chosen = torch.zeros((n, d), dtype=torch.bool).scatter(1, order, True)
    return torch.where(chosen, mean.to(x.dtype).expand(n, d), x)


def augment_rows(
    x: torch.Tensor,
    kind: Augment,
    generator: torch.Generator,
    *,
    sigma: float,
    shape: tuple[int, int],
    low: float,
    high: float,
    std: torch.Tensor | None = None,
    mean: torch.Tensor | None = None,
    fraction: float = 0.2,
) -> torch.Tensor:
    """Replace a seeded half of the rows of ``x`` (each with probability 1/2) by their
    augmented version, so the model keeps seeing clean inputs too.

    ``std`` and ``mean`` (per feature) are needed by ``feature_noise`` and ``missing``.
    """
    if kind is Augment.NONE:
        return x
    chosen = torch.rand(x.shape[0], generator=generator) < 0.5
    if kind is Augment.NOISE:
        changed = noisy(x, sigma, generator, low, high)
    elif kind is Augment.SHIFT:
        changed = shifted(x, shape, generator, low)
    elif kind is Augment.FEATURE_NOISE:
        if std is None:
            raise InvalidRequest("feature_noise augmentation needs the features' std")
        changed = feature_noisy(x, sigma, std, generator)
    else:
        if mean is None:
            raise InvalidRequest("missing augmentation needs the features' mean")
        changed = mean_imputed(x, fraction, mean, generator)
    return torch.where(chosen[:, None], changed, x)
