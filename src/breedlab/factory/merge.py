"""The merge operator's core: a catalogue of merge methods and a streaming file merge.

Owns the merge *math* (one pure function per method: tensors in, tensor out) and the
tensor-by-tensor merge of safetensors files (DESIGN.md §8). Leaves sandboxing,
provenance and the registry to the rest of ``breedlab.factory``; a :class:`MergeSpec`
is the value those record (``to_record``).

Methods (:data:`MERGE_METHODS`). Notation: ``x_i`` the parents, ``b`` the base, ``w_i``
the parents' weights (default 1), ``d_i = x_i - b`` their task vectors, ``λ`` the
``lambda`` scale (default 1). Every method accumulates in fp32 (fp64 for fp64 inputs) and
the result is cast back to the parents' dtype.

``linear``
    ``Σ w_i x_i / Σ w_i`` (``normalize=True``, the default) or ``Σ w_i x_i``. No base.
``task_arithmetic``
    ``b + λ · Σ w_i d_i``, divided by ``Σ w_i`` when ``normalize=True`` (default False).
``slerp``
    Spherical interpolation from the base (``t=0``) to the one parent (``t=1``), the
    whole tensor taken as one vector; falls back to linear interpolation when the two are
    (anti)colinear, ``|cos| > 0.9995``.
``ties``
    TIES-Merging (Yadav et al. 2023, arXiv:2306.01708) in mergekit's form, which is the
    one definition breedlab uses: trim each ``d_i`` to its top ``density`` fraction by
    magnitude, weight it (``w_i d_i``), elect a sign per element (``consensus="sum"``:
    the sign of ``Σ w_i d_i``, ties going to +; ``"count"``: the majority of signs;
    ``None``: no election), keep only the entries that agree with it, and sum them. With
    ``normalize=True`` (default) the sum is divided, per element, by the sum of the
    agreeing weights (the paper's "disjoint mean" when all weights are 1). Then
    ``b + λ · merged``.
``dare``
    DARE (Yu et al. 2023, arXiv:2311.03099): drop each element of ``d_i`` with
    probability ``1 - density`` and rescale the survivors (``rescale="density"``: by
    ``1/density``, the paper's rule); then as ``ties`` from the weighting on.
    ``consensus="sum"`` (default) is mergekit's ``dare_ties``, ``consensus=None`` its
    ``dare_linear``. ``normalize`` defaults to False, as in mergekit.

Determinism: DARE draws from a ``torch.Generator`` seeded per tensor by
:func:`tensor_seed` (sha256 of the run seed and the tensor name), so a result never
depends on the order tensors are visited. The other methods use no randomness.

Where these definitions differ from mergekit 0.1.5 (``mergekit.merge_methods.api.
merge_tensors``, the test oracle in ``tests/unit/factory/test_factory_merge.py``):

1. TIES trimming: the threshold is the k-th largest magnitude, ``k = max(1, int(density
   · n))`` as in mergekit, found by selection (``torch.kthvalue``, narrowed first by
   :func:`kth_largest`), and every element at least that large is kept. mergekit takes
   exactly k elements from a full ``argsort``, so when several magnitudes tie at the
   threshold it keeps an implementation-defined subset of them and we keep them all. Ours
   is order-independent and much cheaper; the two agree whenever the k-th magnitude is
   unique (in the oracle tests, by construction). On 348M-parameter fp32 parents, 59 of
   348M elements differed for this reason (benchmarks/merge.py).
2. DARE rescaling: we default to the paper's ``1/density``; mergekit rescales each
   trimmed task vector to its original L1 norm. ``rescale="l1"`` reproduces mergekit's
   rule, ``rescale="none"`` keeps the survivors as they are.
3. DARE randomness: mergekit draws from torch's global RNG in the order it visits
   tensors. We draw with the same primitive (``torch.bernoulli`` of a float32 tensor of
   ``density``, one draw per parent in order, none when ``density >= 1``) from a
   per-tensor generator; seeding the global RNG with ``tensor_seed(seed, name)`` before
   calling mergekit therefore reproduces our masks exactly (tested).
4. Half precision: mergekit's task-arithmetic family computes in the inputs' dtype
   unless given ``dtype=``; we always accumulate in fp32. Identical for fp32 inputs; for
   fp16/bf16 ours equals mergekit called with ``dtype=torch.float32``.
5. SLERP: we accumulate the norms and the dot product in fp64 (in 1M-element chunks);
   mergekit uses fp32. The coefficients agree to ~1e-7 relative.
6. Inputs: ``linear`` refuses a base (mergekit silently ignores one), ``slerp`` takes a
   base and exactly one parent, and parameters a method does not use are refused rather
   than ignored. Non-float tensors (integer buffers) must be equal across the inputs and
   are copied, as mergekit's ``merge_state_dicts`` does; if they differ it is an error.

Memory: every op on an input tensor is out of place. Tensors from ``safe_open`` are
views of a read-only file mapping, and an in-place op on one copies its pages into
anonymous memory for as long as the file stays open (measured: 269 MB -> 1.56 GB).
In-place ops are used only on buffers allocated here. TIES and DARE need about
``(parents + 1) x`` the tensor in scratch, plus the result; the elementwise tail runs in
1M-element chunks.

Why one module of this length: most of it is the method catalogue's documentation
above and the per-method validation next to each method's math; the streaming merge is
the one caller of the math and shares its parameter types. Split, a method's rules and
its formula would live in two files.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from breedlab.errors import InvalidRequest
from breedlab.tensors.stream import SafetensorsWriter, TensorSpec, dtype_from_name

__all__ = [
    "MERGE_METHODS",
    "MergeMethod",
    "MergeReport",
    "MergeSpec",
    "kth_largest",
    "merge_files",
    "merge_tensor",
    "tensor_seed",
]

# mergekit's colinearity threshold and zero-norm guard for SLERP, and its guard for a
# vanishing sum of weights (generalized_task_arithmetic.py), kept for agreement.
_SLERP_DOT_THRESHOLD = 0.9995
_SLERP_EPS = 1e-8
_WEIGHT_SUM_EPS = 1e-8
_L1_EPS = 1e-7
_CHUNK = 1 << 20
_SAMPLE = 1 << 16
_CONSENSUS = ("sum", "count")
_RESCALE = ("density", "l1", "none")


def tensor_seed(seed: int, name: str) -> int:
    """The DARE generator seed for one tensor: 63 bits of ``sha256(seed, name)``."""
    digest = hashlib.sha256(f"breedlab.merge.dare\0{seed}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


# ---------------------------------------------------------------------------- the spec


def _finite(
    field: str, value: object, low: float | None = None, high: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"merge {field} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidRequest(f"merge {field} must be finite, got {value!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise InvalidRequest(f"merge {field} must lie in [{low}, {high}], got {value!r}")
    return number


def _numbers(
    field: str, value: object, low: float | None = None, high: float | None = None
) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise InvalidRequest(f"merge {field} must be a non-empty list of numbers, got {value!r}")
    return tuple(_finite(field, item, low, high) for item in value)


def _render(number: float) -> str:
    # Canonical JSON refuses floats; repr is the shortest string that round-trips.
    return repr(float(number))


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeSpec:
    """What to merge and how: a method from :data:`MERGE_METHODS` and its parameters.

    ``None`` means "the method's default". A parameter the method does not use must stay
    at its default (a spec never silently ignores a value). ``weights`` and a tuple
    ``density`` are per parent (not the base), in parent order; a scalar ``density``
    applies to every parent. ``seed`` feeds DARE's generators and is recorded for every
    method.

    Raises:
        InvalidRequest: unknown method, a parameter the method does not take, a value
            out of range (densities and ``t`` in [0, 1], finite numbers), or
            ``linear`` normalizing by weights that sum to 0.
    """

    method: str
    weights: tuple[float, ...] | None = None
    density: float | tuple[float, ...] | None = None
    lambda_: float | None = None
    normalize: bool | None = None
    t: float | None = None
    consensus: str | None = "sum"
    rescale: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        entry = MERGE_METHODS.get(self.method)
        if entry is None:
            known = ", ".join(sorted(MERGE_METHODS))
            raise InvalidRequest(f"unknown merge method {self.method!r} (known: {known})")
        for f in fields(self):
            if f.name in ("method", "seed"):
                continue
            record_name = _RECORD_NAMES.get(f.name, f.name)
            if record_name not in entry.parameters and getattr(self, f.name) != f.default:
                raise InvalidRequest(f"merge method {self.method!r} takes no {record_name!r}")
        if self.weights is not None:
            object.__setattr__(self, "weights", _numbers("weights", self.weights))
        if isinstance(self.density, list | tuple):
            object.__setattr__(self, "density", _numbers("density", self.density, 0.0, 1.0))
        elif self.density is not None:
            object.__setattr__(self, "density", _finite("density", self.density, 0.0, 1.0))
        if self.lambda_ is not None:
            object.__setattr__(self, "lambda_", _finite("lambda", self.lambda_))
        if self.t is not None:
            object.__setattr__(self, "t", _finite("t", self.t, 0.0, 1.0))
        elif "t" in entry.parameters:
            raise InvalidRequest(f"merge method {self.method!r} needs t in [0, 1]")
        if self.normalize is not None and not isinstance(self.normalize, bool):
            raise InvalidRequest(f"merge normalize must be true or false, got {self.normalize!r}")
        if self.consensus is not None and self.consensus not in _CONSENSUS:
            raise InvalidRequest(
                f"merge consensus must be 'sum', 'count' or None, got {self.consensus!r}"
            )
        if self.rescale is not None and self.rescale not in _RESCALE:
            raise InvalidRequest(f"merge rescale must be one of {_RESCALE}, got {self.rescale!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidRequest(f"merge seed must be a non-negative integer, got {self.seed!r}")
        if (
            self.method == "linear"
            and self.normalize_value
            and self.weights is not None
            and math.fsum(self.weights) == 0
        ):
            raise InvalidRequest(
                "linear merge with normalize=true needs weights that do not sum to 0"
            )

    # Resolved values ------------------------------------------------------------------

    @property
    def lambda_value(self) -> float:
        """``lambda``, defaulting to 1."""
        return 1.0 if self.lambda_ is None else self.lambda_

    @property
    def normalize_value(self) -> bool:
        """``normalize``, defaulting to the method's own default."""
        return MERGE_METHODS[self.method].normalize if self.normalize is None else self.normalize

    @property
    def rescale_value(self) -> str:
        """DARE's rescale rule, defaulting to ``"density"`` (the paper's 1/density)."""
        return "density" if self.rescale is None else self.rescale

    def weights_for(self, parents: int) -> tuple[float, ...]:
        """One weight per parent (1 each by default).

        Raises:
            InvalidRequest: the spec lists a different number of weights.
        """
        if self.weights is None:
            return (1.0,) * parents
        if len(self.weights) != parents:
            raise InvalidRequest(
                f"merge spec has {len(self.weights)} weights for {parents} parents"
            )
        return self.weights

    def densities_for(self, parents: int) -> tuple[float, ...]:
        """One density per parent (1 each by default, that is no trimming).

        Raises:
            InvalidRequest: the spec lists a different number of densities.
        """
        if self.density is None:
            return (1.0,) * parents
        if isinstance(self.density, tuple):
            if len(self.density) != parents:
                raise InvalidRequest(
                    f"merge spec has {len(self.density)} densities for {parents} parents"
                )
            return self.density
        return (self.density,) * parents

    # Records --------------------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        """A canonical-JSON-able record: the method's parameters, resolved, floats as strings.

        Only the parameters the method uses appear, with defaults filled in, so that two
        specs that merge alike record alike. ``MergeSpec.from_record`` inverts it.
        """
        entry = MERGE_METHODS[self.method]
        record: dict[str, Any] = {"method": self.method, "seed": self.seed}
        values: dict[str, Any] = {
            "weights": None if self.weights is None else [_render(w) for w in self.weights],
            "density": (
                "1.0"
                if self.density is None
                else [_render(d) for d in self.density]
                if isinstance(self.density, tuple)
                else _render(self.density)
            ),
            "lambda": _render(self.lambda_value),
            "normalize": self.normalize_value,
            "t": None if self.t is None else _render(self.t),
            "consensus": self.consensus,
            "rescale": self.rescale_value,
        }
        for name in sorted(entry.parameters):
            record[name] = values[name]
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> MergeSpec:
        """Rebuild a spec from :meth:`to_record` output.

        Raises:
            InvalidRequest: unknown keys or values that do not parse.
        """
        known = {"method", "seed", "weights", "density", "lambda", "normalize", "t"}
        unknown = sorted(set(record) - known - {"consensus", "rescale"})
        if unknown:
            raise InvalidRequest(f"unknown merge spec field(s): {', '.join(unknown)}")

        def number(value: Any) -> float:
            if not isinstance(value, str):
                raise InvalidRequest(f"merge spec numbers are recorded as strings, got {value!r}")
            try:
                return float(value)
            except ValueError as e:
                raise InvalidRequest(f"not a number: {value!r}") from e

        kwargs: dict[str, Any] = {"method": record.get("method"), "seed": record.get("seed", 0)}
        if record.get("weights") is not None:
            kwargs["weights"] = tuple(number(w) for w in record["weights"])
        if "density" in record:
            density = record["density"]
            kwargs["density"] = (
                tuple(number(d) for d in density) if isinstance(density, list) else number(density)
            )
        if "lambda" in record:
            kwargs["lambda_"] = number(record["lambda"])
        if "t" in record and record["t"] is not None:
            kwargs["t"] = number(record["t"])
        for name in ("normalize", "consensus", "rescale"):
            if name in record:
                kwargs[name] = record[name]
        if not isinstance(kwargs["method"], str):
            raise InvalidRequest("merge spec record needs a method name")
        return cls(**kwargs)


_RECORD_NAMES = {"lambda_": "lambda"}


# ------------------------------------------------------------------------ the methods

Kernel = Callable[[Sequence[torch.Tensor], torch.Tensor | None, MergeSpec, str], torch.Tensor]


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeMethod:
    """One catalogue entry: the per-tensor function and what the method accepts."""

    name: str
    merge: Kernel
    parameters: frozenset[str]
    needs_base: bool
    normalize: bool = False
    reference: str = ""


def _work_dtype(tensor: torch.Tensor) -> torch.dtype:
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def _finish(
    mixed: torch.Tensor, base: torch.Tensor, divisor: torch.Tensor | float, spec: MergeSpec
) -> torch.Tensor:
    """``base + λ · mixed [/ divisor]``, in place on ``mixed`` (a buffer of ours)."""
    if spec.normalize_value:
        mixed.div_(divisor)
    if spec.lambda_value != 1:
        mixed.mul_(spec.lambda_value)
    return mixed.add_(base)


def _scalar_divisor(weights: Sequence[float]) -> float:
    total = math.fsum(weights)
    return 1.0 if abs(total) < _WEIGHT_SUM_EPS else total


def _linear(
    parents: Sequence[torch.Tensor], base: torch.Tensor | None, spec: MergeSpec, name: str
) -> torch.Tensor:
    weights = spec.weights_for(len(parents))
    dtype = _work_dtype(parents[0])
    acc = torch.mul(parents[0].to(dtype), weights[0])
    for x, w in zip(parents[1:], weights[1:], strict=True):
        acc.add_(x.to(dtype), alpha=w)
    if spec.normalize_value:
        acc.div_(math.fsum(weights))
    return acc


def _task_arithmetic(
    parents: Sequence[torch.Tensor], base: torch.Tensor | None, spec: MergeSpec, name: str
) -> torch.Tensor:
    assert base is not None  # merge_tensor checks the arity
    weights = spec.weights_for(len(parents))
    b = base.to(_work_dtype(base))
    mixed = torch.sub(parents[0].to(b.dtype), b).mul_(weights[0])
    for x, w in zip(parents[1:], weights[1:], strict=True):
        mixed.add_(torch.sub(x.to(b.dtype), b), alpha=w)
    return _finish(mixed, b, _scalar_divisor(weights), spec)


def _slerp(
    parents: Sequence[torch.Tensor], base: torch.Tensor | None, spec: MergeSpec, name: str
) -> torch.Tensor:
    assert base is not None and spec.t is not None  # merge_tensor and MergeSpec check these
    t = spec.t
    dtype = _work_dtype(base)
    a = base.reshape(-1)
    b = parents[0].reshape(-1)
    aa = bb = ab = 0.0
    for start in range(0, a.numel(), _CHUNK):
        x = a[start : start + _CHUNK].to(torch.float64)
        y = b[start : start + _CHUNK].to(torch.float64)
        aa += float(torch.dot(x, x))
        bb += float(torch.dot(y, y))
        ab += float(torch.dot(x, y))
    norm_a, norm_b = math.sqrt(aa), math.sqrt(bb)
    norm_a = norm_a if norm_a > _SLERP_EPS else 1.0
    norm_b = norm_b if norm_b > _SLERP_EPS else 1.0
    cos = min(1.0, max(-1.0, ab / (norm_a * norm_b)))
    if a.numel() == 0 or abs(cos) > _SLERP_DOT_THRESHOLD:
        coef_a, coef_b = 1.0 - t, t  # (anti)colinear: SLERP is ill-conditioned, lerp
    else:
        theta = math.acos(cos)
        coef_a = math.sin((1.0 - t) * theta) / math.sin(theta)
        coef_b = math.sin(t * theta) / math.sin(theta)
    out = torch.mul(a.to(dtype), coef_a).add_(b.to(dtype), alpha=coef_b)
    return out.reshape(base.shape)


def kth_largest(values: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th largest of a 1-D tensor (``1 <= k <= n``): ``torch.kthvalue(values, n - k + 1)``.

    Exact, but cheaper than a plain ``kthvalue`` on large tensors, which copies the input
    and builds an int64 index beside it (12 bytes of scratch per element) to select from
    all ``n``. Here a strided sample of ~65k elements brackets the answer, two passes
    count the elements above and inside the bracket, and ``kthvalue`` selects only among
    the few percent inside it. If the bracket misses (an unrepresentative sample) or the
    values hold NaN, it falls back to the plain ``kthvalue``.

    Raises:
        InvalidRequest: ``values`` is not 1-D or ``k`` is out of range.
    """
    n = values.numel()
    if values.dim() != 1 or not 1 <= k <= n:
        raise InvalidRequest(f"kth_largest needs a 1-D tensor and 1 <= k <= {n}, got k={k}")
    if n <= 4 * _SAMPLE or bool(torch.isnan(values).any()):
        return torch.kthvalue(values, n - k + 1).values
    sample = values[:: n // _SAMPLE]
    m = sample.numel()
    # Where the k-th largest should fall in the sample, +- 8 binomial standard deviations.
    rank = k * m / n
    margin = 8 * math.sqrt(rank * (1 - rank / m)) + 8
    top, bottom = math.floor(rank - margin), math.ceil(rank + margin)
    high = torch.kthvalue(sample, m - top + 1).values if top >= 1 else None
    low = torch.kthvalue(sample, m - bottom + 1).values if bottom <= m else None
    above = 0 if high is None else int(torch.count_nonzero(values > high))
    inside = values >= low if low is not None else torch.ones_like(values, dtype=torch.bool)
    if high is not None:
        inside &= values <= high
    count = int(torch.count_nonzero(inside))
    if not above < k <= above + count:
        return torch.kthvalue(values, n - k + 1).values
    # Every bracketed value is below the `above` ones and above the rest.
    return torch.kthvalue(values[inside], count - (k - above) + 1).values


def _trim_by_magnitude(delta: torch.Tensor, density: float) -> None:
    """Zero all but the top ``density`` fraction of ``delta`` by magnitude, in place."""
    if density >= 1:
        return
    n = delta.numel()
    if density <= 0 or n == 0:
        delta.zero_()
        return
    k = max(1, int(density * n))  # as mergekit
    magnitude = delta.abs()
    threshold = kth_largest(magnitude.reshape(-1), k)  # selection, not a full sort
    # Multiplying by a 0/1 mask (made in place in our own buffer) is ~4x faster than
    # masked_fill_ on CPU; dropped negatives become -0.0, which is zero everywhere below.
    delta.mul_(magnitude.ge_(threshold))


def _drop_and_rescale(
    delta: torch.Tensor, density: float, rescale: str, generator: torch.Generator
) -> None:
    """DARE: keep each element with probability ``density``, rescale survivors, in place."""
    if density >= 1:
        return  # no draw, as mergekit, so the generators stay aligned
    keep = torch.bernoulli(
        torch.full(delta.shape, density, dtype=torch.float32), generator=generator
    )
    if rescale == "l1":
        before = delta.abs().sum()
        delta.mul_(keep)
        after = delta.abs().sum()
        if before >= _L1_EPS and after >= _L1_EPS:
            delta.mul_(before / after)
    elif rescale == "density" and density > 0:
        delta.mul_(keep).div_(density)
    else:
        delta.mul_(keep)


def _elect(
    parents: Sequence[torch.Tensor],
    base: torch.Tensor,
    spec: MergeSpec,
    trim: Callable[[torch.Tensor, float], None],
) -> torch.Tensor:
    """The shared tail of TIES and DARE: trim, weight, elect signs, disjoint-merge."""
    n = len(parents)
    weights = spec.weights_for(n)
    densities = spec.densities_for(n)
    b = base.to(_work_dtype(base))
    deltas = torch.empty((n, *b.shape), dtype=b.dtype)
    for i, x in enumerate(parents):
        torch.sub(x.to(b.dtype), b, out=deltas[i])
        trim(deltas[i], densities[i])
        if weights[i] != 1:
            deltas[i].mul_(weights[i])
    # From here on every step is elementwise: run it in cache-sized chunks, which keeps
    # the scratch small and the passes in cache.
    flat, flat_base = deltas.reshape(n, -1), b.reshape(-1)
    out = torch.empty_like(flat_base)
    scalar_divisor = _scalar_divisor(weights)
    for start in range(0, flat_base.numel(), _CHUNK):
        d = flat[:, start : start + _CHUNK]
        if spec.consensus is None:
            divisor: torch.Tensor | float = scalar_divisor
        else:
            elected = d.sum(dim=0) if spec.consensus == "sum" else d.sign().sum(dim=0)
            elected.ge_(0).mul_(2).sub_(1)  # +1 where the sum is >= 0 (ties to +, as mergekit)
            agrees = torch.mul(d, elected).gt_(0)  # 1 where sign(d) is elected; 0 never is
            d.mul_(agrees)
            divisor = 1.0
            if spec.normalize_value:  # by the weights of the agreeing parents
                divisor = torch.mul(agrees[0], weights[0])
                for i in range(1, n):
                    divisor.add_(agrees[i], alpha=weights[i])
                divisor.add_(divisor == 0)  # no agreeing parent: divide by 1, as mergekit
        mixed = _finish(d.sum(dim=0), flat_base[start : start + _CHUNK], divisor, spec)
        out[start : start + _CHUNK] = mixed
    return out.reshape(b.shape)


def _ties(
    parents: Sequence[torch.Tensor], base: torch.Tensor | None, spec: MergeSpec, name: str
) -> torch.Tensor:
    assert base is not None
    return _elect(parents, base, spec, _trim_by_magnitude)


def _dare(
    parents: Sequence[torch.Tensor], base: torch.Tensor | None, spec: MergeSpec, name: str
) -> torch.Tensor:
    assert base is not None
    generator = torch.Generator().manual_seed(tensor_seed(spec.seed, name))
    rescale = spec.rescale_value

    def trim(delta: torch.Tensor, density: float) -> None:
        _drop_and_rescale(delta, density, rescale, generator)

    return _elect(parents, base, spec, trim)


#: The merge catalogue (seed, GENERATE_IN_SANDBOX: allowlisted operators; variants are
#: parameters: "TIES with density 0.5" is a MergeSpec, not a new method).
MERGE_METHODS: Mapping[str, MergeMethod] = MappingProxyType(
    {
        "linear": MergeMethod(
            name="linear",
            merge=_linear,
            parameters=frozenset({"weights", "normalize"}),
            needs_base=False,
            normalize=True,
            reference="https://arxiv.org/abs/2203.05482",
        ),
        "task_arithmetic": MergeMethod(
            name="task_arithmetic",
            merge=_task_arithmetic,
            parameters=frozenset({"weights", "lambda", "normalize"}),
            needs_base=True,
            reference="https://arxiv.org/abs/2212.04089",
        ),
        "slerp": MergeMethod(
            name="slerp",
            merge=_slerp,
            parameters=frozenset({"t"}),
            needs_base=True,
            reference="https://en.wikipedia.org/wiki/Slerp",
        ),
        "ties": MergeMethod(
            name="ties",
            merge=_ties,
            parameters=frozenset({"weights", "density", "lambda", "normalize", "consensus"}),
            needs_base=True,
            normalize=True,
            reference="https://arxiv.org/abs/2306.01708",
        ),
        "dare": MergeMethod(
            name="dare",
            merge=_dare,
            parameters=frozenset(
                {"weights", "density", "lambda", "normalize", "consensus", "rescale"}
            ),
            needs_base=True,
            reference="https://arxiv.org/abs/2311.03099",
        ),
    }
)


# ------------------------------------------------------------------ one tensor, pure


def _check_arity(method: MergeMethod, parents: int, has_base: bool) -> None:
    if parents < 1:
        raise InvalidRequest("a merge needs at least one parent")
    if method.needs_base and not has_base:
        raise InvalidRequest(f"merge method {method.name!r} needs a base model")
    if not method.needs_base and has_base:
        raise InvalidRequest(
            f"merge method {method.name!r} takes no base model; list every model as a parent"
        )
    if method.name == "slerp" and parents != 1:
        raise InvalidRequest(
            f"slerp interpolates a base and exactly one parent, got {parents} parents"
        )


def merge_tensor(
    spec: MergeSpec,
    parents: Sequence[torch.Tensor],
    base: torch.Tensor | None = None,
    *,
    name: str = "",
) -> torch.Tensor:
    """Merge one tensor across the parents (and the base): a new tensor in their dtype.

    ``name`` seeds DARE's generator (see :func:`tensor_seed`); the other methods ignore
    it. Inputs are never modified. Non-float tensors must be equal and are copied.

    Raises:
        InvalidRequest: the wrong number of parents or base for the method, weights or
            densities not one per parent, or inputs whose shapes or dtypes differ, or
            non-float inputs that are not equal.
    """
    method = MERGE_METHODS[spec.method]
    _check_arity(method, len(parents), base is not None)
    spec.weights_for(len(parents))
    spec.densities_for(len(parents))
    inputs = [*parents] if base is None else [base, *parents]
    first = inputs[0]
    for other in inputs[1:]:
        if other.dtype != first.dtype or other.shape != first.shape:
            raise InvalidRequest(
                f"tensor {name!r}: cannot merge {first.dtype} {tuple(first.shape)} "
                f"with {other.dtype} {tuple(other.shape)}"
            )
    if not first.is_floating_point():
        if any(not torch.equal(first, other) for other in inputs[1:]):
            raise InvalidRequest(
                f"tensor {name!r} is not floating point and differs between the inputs"
            )
        return first.clone()
    with torch.no_grad():
        out = method.merge(parents, base, spec, name)
    return out.to(first.dtype)


# ------------------------------------------------------------------ files, streaming


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeReport:
    """What :func:`merge_files` wrote: tensor counts, elements and the file's size in bytes."""

    out: Path
    spec: MergeSpec
    tensors: int
    merged: int
    copied: int
    parameters: int
    size: int


_Header = dict[str, tuple[str, tuple[int, ...]]]


def _open(path: Path) -> Any:
    try:
        return safe_open(str(path), framework="pt")
    except (OSError, SafetensorError) as e:
        raise InvalidRequest(f"cannot read safetensors file {path}: {e}") from e


def _read_header(path: Path) -> _Header:
    header: _Header = {}
    with _open(path) as f:
        for name in f.keys():
            piece = f.get_slice(name)
            header[name] = (piece.get_dtype(), tuple(piece.get_shape()))
    return header


def _check_one_architecture(labels: Sequence[str], headers: Sequence[_Header]) -> None:
    """Mismatched architectures in a merge are a clear error (DESIGN.md §8)."""
    reference = headers[0]
    for label, header in zip(labels[1:], headers[1:], strict=True):
        missing = sorted(set(reference) - set(header))
        extra = sorted(set(header) - set(reference))
        if missing or extra:
            parts = []
            if missing:
                parts.append(
                    f"{len(missing)} tensor(s) of {labels[0]} are not in {label} "
                    f"(e.g. {missing[0]!r})"
                )
            if extra:
                parts.append(
                    f"{len(extra)} tensor(s) of {label} are not in {labels[0]} (e.g. {extra[0]!r})"
                )
            raise InvalidRequest("mismatched architectures: " + "; ".join(parts))
        for name, (dtype, shape) in reference.items():
            if header[name] != (dtype, shape):
                other_dtype, other_shape = header[name]
                raise InvalidRequest(
                    f"mismatched architectures: tensor {name!r} is {dtype} {shape} in "
                    f"{labels[0]} but {other_dtype} {other_shape} in {label}"
                )


def merge_files(
    parents: Sequence[Path],
    out: Path,
    spec: MergeSpec,
    base: Path | None = None,
) -> MergeReport:
    """Merge safetensors files tensor by tensor into ``out``, in O(largest tensor) memory.

    Each tensor is read through a fresh ``safe_open`` handle, merged with
    :func:`merge_tensor`, cast to the parents' dtype and streamed to ``out`` by
    :class:`SafetensorsWriter`; dropping the handle unmaps the inputs, so neither
    anonymous nor file-backed RSS grows with the model. The output has no
    ``__metadata__``. Address space: every input file is mapped whole while one of its
    tensors is read, so an ``RLIMIT_AS`` must exceed the sum of the inputs' sizes.

    Raises:
        InvalidRequest: unreadable inputs, ``out`` naming an input, tensor names, dtypes
            or shapes that differ between the inputs, or a spec that does not fit the
            number of parents (see :func:`merge_tensor`). Nothing is left at ``out``.
    """
    method = MERGE_METHODS[spec.method]
    parent_paths = [Path(p) for p in parents]
    _check_arity(method, len(parent_paths), base is not None)
    spec.weights_for(len(parent_paths))
    spec.densities_for(len(parent_paths))
    inputs = parent_paths if base is None else [Path(base), *parent_paths]
    labels = [f"parent {p}" for p in parent_paths]
    if base is not None:
        labels.insert(0, f"base {base}")
    out = Path(out)
    if any(p.resolve() == out.resolve() for p in inputs):
        raise InvalidRequest(f"merge output {out} is one of its inputs")
    headers = [_read_header(p) for p in inputs]
    _check_one_architecture(labels, headers)
    specs = [
        TensorSpec(name=name, dtype=dtype_from_name(dtype), shape=shape)
        for name, (dtype, shape) in headers[0].items()
    ]
    merged = copied = numel = 0
    with SafetensorsWriter(out, specs) as writer:
        for name in writer.names:
            with ExitStack() as stack:
                handles = [stack.enter_context(_open(p)) for p in inputs]
                tensors = [h.get_tensor(name) for h in handles]
            b, xs = (None, tensors) if base is None else (tensors[0], tensors[1:])
            result = merge_tensor(spec, xs, b, name=name)
            writer.write(name, result)
            if result.is_floating_point():
                merged += 1
            else:
                copied += 1
            numel += result.numel()
            del tensors, b, xs, result
    return MergeReport(
        out=out,
        spec=spec,
        tensors=len(specs),
        merged=merged,
        copied=copied,
        parameters=numel,
        size=out.stat().st_size,
    )
