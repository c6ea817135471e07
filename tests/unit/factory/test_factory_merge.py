"""Merge methods, tensor by tensor, against mergekit 0.1.5 as an oracle.

mergekit is a test-only dependency (LGPL, installed ``--no-deps``); only its in-memory
``merge_methods.api`` is imported (about 0.2 s on top of torch). Where our definitions
differ from mergekit's (see the ``breedlab.factory.merge`` docstring), the tests say so
and compare what is comparable: DARE's masks are aligned by seeding mergekit's global RNG
with our per-tensor seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mergekit.merge_methods.api import merge_tensors

from breedlab import canonical
from breedlab.errors import InvalidRequest
from breedlab.factory.merge import (
    MERGE_METHODS,
    MergeSpec,
    kth_largest,
    merge_tensor,
    tensor_seed,
)

SHAPE = (48, 40)


def _randn(seed: int, shape: Sequence[int] = SHAPE, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed)) * scale


def _family(
    n: int, seed: int = 0, shape: Sequence[int] = SHAPE
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A base and ``n`` fine-tuned parents (base + a task vector)."""
    base = _randn(seed, shape)
    return base, [base + _randn(seed + 1 + i, shape, 0.1) for i in range(n)]


def _mergekit(
    method: str, base: torch.Tensor | None, parents: Sequence[torch.Tensor], **parameters: Any
) -> torch.Tensor:
    tensors = list(parents) if base is None else [base, *parents]
    return merge_tensors(
        tensors, method, parameters=parameters, base_index=None if base is None else 0
    )


def _close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ against mergekit


@pytest.mark.parametrize("normalize", [True, False])
def test_linear_equals_mergekit_linear(normalize: bool) -> None:
    _, parents = _family(3)
    weights = (0.2, 0.5, 1.3)
    spec = MergeSpec(method="linear", weights=weights, normalize=normalize)
    theirs = _mergekit("linear", None, parents, weight=list(weights), normalize=normalize)
    _close(merge_tensor(spec, parents), theirs)


def test_linear_of_two_equal_weights_is_exactly_their_mean() -> None:
    _, (a, b) = _family(2)
    assert torch.equal(merge_tensor(MergeSpec(method="linear"), [a, b]), (a + b) / 2)


@pytest.mark.parametrize("normalize", [True, False])
def test_task_arithmetic_equals_mergekit_task_arithmetic(normalize: bool) -> None:
    base, parents = _family(2)
    spec = MergeSpec(
        method="task_arithmetic", weights=(0.7, -0.3), lambda_=0.8, normalize=normalize
    )
    theirs = _mergekit(
        "task_arithmetic", base, parents, weight=[0.7, -0.3], normalize=normalize, **{"lambda": 0.8}
    )
    _close(merge_tensor(spec, parents, base), theirs)


@pytest.mark.parametrize("t", [0.0, 0.3, 0.5, 1.0])
def test_slerp_equals_mergekit_slerp(t: float) -> None:
    base, (other,) = _family(1)
    other = _randn(99)  # far from colinear with base, so the spherical branch runs
    _close(
        merge_tensor(MergeSpec(method="slerp", t=t), [other], base),
        _mergekit("slerp", base, [other], t=t),
    )


@pytest.mark.parametrize(
    ("case", "make_other"),
    [
        ("colinear", lambda a: 2 * a),
        ("antipodal", lambda a: -0.5 * a),
        ("nearly colinear", lambda a: a + 1e-3 * _randn(7, a.shape)),
        ("zero", lambda a: torch.zeros_like(a)),
    ],
)
def test_slerp_falls_back_to_linear_like_mergekit_when_colinear(case: str, make_other: Any) -> None:
    base = _randn(3)
    other = make_other(base)
    ours = merge_tensor(MergeSpec(method="slerp", t=0.25), [other], base)
    _close(ours, _mergekit("slerp", base, [other], t=0.25))
    if case != "zero":
        _close(ours, 0.75 * base + 0.25 * other)


@pytest.mark.parametrize("shape", [(), (5,), (4, 3, 2)])
def test_slerp_treats_any_shape_as_one_vector_like_mergekit(shape: tuple[int, ...]) -> None:
    base, other = _randn(1, shape), _randn(2, shape)
    ours = merge_tensor(MergeSpec(method="slerp", t=0.4), [other], base)
    _close(ours, _mergekit("slerp", base, [other], t=0.4))


@pytest.mark.parametrize(
    ("density", "weights", "normalize", "consensus"),
    [
        (0.5, (1.0, 1.0, 1.0), True, "sum"),
        (0.2, (0.6, 0.3, 1.1), True, "sum"),
        (0.7, (0.6, -0.3, 1.1), False, "sum"),
        (1.0, (0.5, 0.5, 0.5), True, "sum"),
        (0.5, (1.0, 0.4, 0.2), True, "count"),
        (0.3, (0.2, 0.3, 0.4), True, None),
        (0.0, (1.0, 1.0, 1.0), True, "sum"),
    ],
)
def test_ties_equals_mergekit_ties(
    density: float, weights: tuple[float, ...], normalize: bool, consensus: str | None
) -> None:
    base, parents = _family(3)
    spec = MergeSpec(
        method="ties",
        density=density,
        weights=weights,
        normalize=normalize,
        consensus=consensus,
        lambda_=0.9,
    )
    if consensus == "sum":
        theirs = _mergekit(
            "ties",
            base,
            parents,
            density=density,
            weight=list(weights),
            normalize=normalize,
            **{"lambda": 0.9},
        )
    else:
        # mergekit's registry has no "ties with count/no consensus"; build the same
        # generalized method it registers for ties with the other consensus.
        from mergekit.merge_methods.generalized_task_arithmetic import (
            ConsensusMethod,
            GeneralizedTaskArithmeticMerge,
        )
        from mergekit.sparsify import SparsificationMethod

        method = GeneralizedTaskArithmeticMerge(
            consensus_method=None if consensus is None else ConsensusMethod(consensus),
            sparsification_method=SparsificationMethod.magnitude,
            default_normalize=True,
            default_rescale=False,
            method_name="ties_variant",
            method_pretty_name=None,
            method_reference_url=None,
        )
        theirs = merge_tensors(
            [base, *parents],
            method,
            parameters={
                "density": density,
                "weight": list(weights),
                "normalize": normalize,
                "lambda": 0.9,
            },
            base_index=0,
        )
    _close(merge_tensor(spec, parents, base), theirs)


def test_ties_with_a_density_per_parent_equals_mergekit() -> None:
    base, parents = _family(2)
    spec = MergeSpec(method="ties", density=(0.3, 0.8), weights=(1.0, 0.5))
    theirs = _mergekit("ties", base, parents, density=[0.3, 0.8], weight=[1.0, 0.5])
    _close(merge_tensor(spec, parents, base), theirs)


def test_ties_on_half_precision_equals_mergekit_computing_in_fp32() -> None:
    # mergekit computes in the inputs' dtype unless told; we always accumulate in fp32.
    # Density 1: fp16 task vectors have many equal magnitudes, where trimming differs
    # by definition (see test_ties_keeps_every_element_tied_with_the_kth_magnitude).
    base, parents = _family(2)
    base16, parents16 = base.half(), [p.half() for p in parents]
    spec = MergeSpec(method="ties", density=1.0, weights=(0.7, 0.4))
    theirs = merge_tensors(
        [base16, *parents16],
        "ties",
        parameters={"density": 1.0, "weight": [0.7, 0.4]},
        base_index=0,
        dtype=torch.float32,
        out_dtype=torch.float16,
    )
    ours = merge_tensor(spec, parents16, base16)
    assert ours.dtype == torch.float16
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("consensus", ["sum", None])
def test_dare_with_l1_rescale_equals_mergekit_dare_when_the_rng_is_aligned(
    consensus: str | None,
) -> None:
    base, parents = _family(3)
    spec = MergeSpec(
        method="dare",
        density=0.4,
        weights=(0.5, 1.0, 0.7),
        consensus=consensus,
        rescale="l1",
        seed=11,
    )
    ours = merge_tensor(spec, parents, base, name="layers.0.mlp.weight")
    torch.manual_seed(tensor_seed(11, "layers.0.mlp.weight"))
    theirs = _mergekit(
        "dare_ties" if consensus == "sum" else "dare_linear",
        base,
        parents,
        density=0.4,
        weight=[0.5, 1.0, 0.7],
    )
    _close(ours, theirs)


def test_dare_rescales_by_one_over_density_where_mergekit_rescales_to_the_l1_norm() -> None:
    # Same masks (aligned RNG); mergekit without rescale is our rescale="none", and our
    # default, the paper's 1/density, scales the merged task vector by 1/density.
    base, parents = _family(2)
    common: dict[str, Any] = {"method": "dare", "density": 0.25, "weights": (1.0, 0.6), "seed": 5}
    density_rescaled = merge_tensor(MergeSpec(**common), parents, base, name="w")
    unscaled = merge_tensor(MergeSpec(**common, rescale="none"), parents, base, name="w")
    torch.manual_seed(tensor_seed(5, "w"))
    theirs = _mergekit("dare_ties", base, parents, density=0.25, weight=[1.0, 0.6], rescale=False)
    _close(unscaled, theirs)
    _close(density_rescaled - base, (theirs - base) / 0.25)


def _distinct_magnitudes(n: int, seed: int) -> torch.Tensor:
    """Task vectors whose magnitudes are all different, so "top k" is unambiguous."""
    g = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (n,), generator=g) * 2 - 1
    return (torch.randperm(n, generator=g) + 1) * 1e-6 * signs


def test_ties_on_tensors_larger_than_a_chunk_equals_mergekit() -> None:
    # 1.1M elements: the bracketed k-th-value selection and two chunks of the election.
    shape = (1100, 1000)
    base = torch.zeros(shape)
    parents = [_distinct_magnitudes(1_100_000, seed).reshape(shape) for seed in (1, 2, 3)]
    spec = MergeSpec(method="ties", density=0.3, weights=(1.0, 0.5, 0.8))
    theirs = _mergekit("ties", base, parents, density=0.3, weight=[1.0, 0.5, 0.8])
    _close(merge_tensor(spec, parents, base), theirs)


class _KthvalueSpy:
    """Record the sizes ``torch.kthvalue`` is asked to select from."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.kthvalue = torch.kthvalue

    def __call__(self, values: torch.Tensor, k: int) -> Any:
        self.sizes.append(values.numel())
        return self.kthvalue(values, k)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(300_000, 400_000),
    fraction=st.floats(0.0, 1.0),
    levels=st.sampled_from([None, 3, 1000]),
    seed=st.integers(0, 2**32 - 1),
)
def test_kth_largest_equals_kthvalue_and_selects_from_a_small_bracket(
    n: int, fraction: float, levels: int | None, seed: int
) -> None:
    values = torch.rand(n, generator=torch.Generator().manual_seed(seed))
    if levels is not None:  # many equal values
        values = torch.floor(values * levels)
    k = max(1, min(n, round(fraction * n)))
    spy = _KthvalueSpy()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "kthvalue", spy)
        found = kth_largest(values, k)
    assert found == torch.kthvalue(values, n - k + 1).values
    assert n not in spy.sizes or levels is not None  # equal values may defeat the bracket
    if levels is None:
        assert spy.sizes[-1] < n / 10  # the final selection is among a few percent


def test_kth_largest_falls_back_to_a_full_kthvalue_when_the_sample_misleads() -> None:
    n = 300_000
    values = torch.rand(n, generator=torch.Generator().manual_seed(0))
    values[:: n // 65536] += 10  # every sampled element is larger than all the others
    spy = _KthvalueSpy()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "kthvalue", spy)
        found = kth_largest(values, n // 2)
    assert found == torch.kthvalue(values, n - n // 2 + 1).values
    assert spy.sizes[-1] == n


def test_kth_largest_treats_nan_as_largest_like_kthvalue() -> None:
    n = 300_000
    values = torch.rand(n, generator=torch.Generator().manual_seed(1))
    values[:1000] = float("nan")
    for k in (1, 1000, 1001, n // 2):
        expected = torch.kthvalue(values, n - k + 1).values
        found = kth_largest(values, k)
        assert torch.equal(found, expected) or bool(found.isnan() and expected.isnan())


def test_kth_largest_refuses_k_out_of_range_and_tensors_that_are_not_flat() -> None:
    with pytest.raises(InvalidRequest, match="1 <= k <= 3"):
        kth_largest(torch.ones(3), 4)
    with pytest.raises(InvalidRequest, match="1-D"):
        kth_largest(torch.ones(2, 2), 1)


# ------------------------------------------------------------------ DARE's randomness


def test_dare_keeps_about_density_of_each_task_vector_and_rescales_it_by_one_over_density() -> None:
    base, (parent,) = _family(1, shape=(200, 500))
    spec = MergeSpec(method="dare", density=0.3, consensus=None, seed=1)
    delta = merge_tensor(spec, [parent], base, name="w") - base
    kept = delta != 0
    assert abs(kept.float().mean().item() - 0.3) < 0.01  # 7 standard deviations
    torch.testing.assert_close(delta[kept], ((parent - base) / 0.3)[kept], rtol=1e-6, atol=1e-6)


def test_dare_is_deterministic_per_seed_and_tensor_name() -> None:
    base, parents = _family(2)

    def run(seed: int, name: str) -> torch.Tensor:
        return merge_tensor(
            MergeSpec(method="dare", density=0.5, seed=seed), parents, base, name=name
        )

    assert torch.equal(run(1, "a"), run(1, "a"))
    assert not torch.equal(run(1, "a"), run(2, "a"))
    assert not torch.equal(run(1, "a"), run(1, "b"))


def test_dare_results_do_not_depend_on_the_global_rng_or_the_order_of_tensors() -> None:
    base, parents = _family(2)
    spec = MergeSpec(method="dare", density=0.5, seed=3)
    torch.manual_seed(0)
    first = merge_tensor(spec, parents, base, name="b")
    torch.manual_seed(1)
    merge_tensor(spec, parents, base, name="a")  # another tensor visited first
    assert torch.equal(merge_tensor(spec, parents, base, name="b"), first)


def test_tensor_seeds_are_stable_63_bit_values() -> None:
    assert tensor_seed(0, "w") == tensor_seed(0, "w")
    assert tensor_seed(0, "w") != tensor_seed(1, "w")
    assert 0 <= tensor_seed(2**70, "x" * 1000) < 2**63


# ------------------------------------------------------------------ definitions


def test_ties_keeps_every_element_tied_with_the_kth_magnitude() -> None:
    # k = int(0.4 * 5) = 2; the 2nd-largest magnitude is 3, and all three 3s are kept
    # (mergekit's argsort would keep two of them, which two being implementation-defined).
    base = torch.zeros(5)
    parent = torch.tensor([3.0, -3.0, 3.0, 1.0, 2.0])
    spec = MergeSpec(method="ties", density=0.4)
    assert torch.equal(merge_tensor(spec, [parent], base), torch.tensor([3.0, -3.0, 3.0, 0.0, 0.0]))


def test_ties_elects_a_sign_and_averages_only_the_agreeing_parents() -> None:
    base = torch.zeros(3)
    parents = [torch.tensor([1.0, 2.0, -4.0]), torch.tensor([3.0, -1.0, 2.0])]
    merged = merge_tensor(MergeSpec(method="ties", density=1.0), parents, base)
    # element 0: both agree (+) -> mean 2; element 1: sum +1 elects +, only 2 agrees;
    # element 2: sum -2 elects -, only -4 agrees.
    assert torch.equal(merged, torch.tensor([2.0, 2.0, -4.0]))


@pytest.mark.parametrize(
    "spec",
    [
        MergeSpec(method="linear", weights=(0.3, 0.7)),
        MergeSpec(method="task_arithmetic", lambda_=0.5),
        MergeSpec(method="ties", density=0.5),
        MergeSpec(method="dare", density=0.5),
    ],
    ids=lambda s: s.method,
)
def test_merging_never_writes_to_its_inputs(spec: MergeSpec) -> None:
    base, parents = _family(2)
    copies = [base.clone(), *(p.clone() for p in parents)]
    result = merge_tensor(spec, parents, None if spec.method == "linear" else base, name="w")
    for original, copy in zip([base, *parents], copies, strict=True):
        assert torch.equal(original, copy)
        assert result.data_ptr() != original.data_ptr()


def test_slerp_never_writes_to_its_inputs() -> None:
    base, other = _randn(1), _randn(2)
    copies = (base.clone(), other.clone())
    merge_tensor(MergeSpec(method="slerp", t=0.5), [other], base)
    assert torch.equal(base, copies[0])
    assert torch.equal(other, copies[1])


def test_half_precision_parents_are_merged_in_fp32_and_returned_in_their_dtype() -> None:
    _, (a, b) = _family(2)
    merged = merge_tensor(MergeSpec(method="linear"), [a.bfloat16(), b.bfloat16()])
    assert merged.dtype == torch.bfloat16
    expected = ((a.bfloat16().float() + b.bfloat16().float()) / 2).bfloat16()
    assert torch.equal(merged, expected)


def test_integer_tensors_are_copied_when_equal_and_refused_when_they_differ() -> None:
    ids = torch.arange(10).reshape(1, 10)
    merged = merge_tensor(MergeSpec(method="ties", density=0.5), [ids.clone()], ids, name="pos")
    assert torch.equal(merged, ids)
    with pytest.raises(InvalidRequest, match="'pos' is not floating point and differs"):
        merge_tensor(MergeSpec(method="ties", density=0.5), [ids + 1], ids, name="pos")


def test_parents_of_different_shapes_or_dtypes_are_refused() -> None:
    spec = MergeSpec(method="linear")
    with pytest.raises(
        InvalidRequest, match=r"tensor 'w': cannot merge .* \(2, 3\) with .* \(3, 2\)"
    ):
        merge_tensor(spec, [torch.ones(2, 3), torch.ones(3, 2)], name="w")
    with pytest.raises(InvalidRequest, match="float16"):
        merge_tensor(spec, [torch.ones(2), torch.ones(2, dtype=torch.float16)], name="w")


@pytest.mark.parametrize(
    ("spec", "parents", "with_base", "message"),
    [
        (MergeSpec(method="linear"), 2, True, "takes no base"),
        (MergeSpec(method="ties"), 2, False, "needs a base"),
        (MergeSpec(method="slerp", t=0.5), 2, True, "exactly one parent"),
        (MergeSpec(method="linear", weights=(1.0, 2.0)), 3, False, "2 weights for 3 parents"),
        (MergeSpec(method="dare", density=(0.5,)), 2, True, "1 densities for 2 parents"),
    ],
)
def test_a_spec_that_does_not_fit_the_inputs_is_refused(
    spec: MergeSpec, parents: int, with_base: bool, message: str
) -> None:
    base, xs = _family(parents)
    with pytest.raises(InvalidRequest, match=message):
        merge_tensor(spec, xs, base if with_base else None)


# ------------------------------------------------------------------ the spec


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "model_soup"}, "unknown merge method"),
        ({"method": "linear", "density": 0.5}, "takes no 'density'"),
        ({"method": "linear", "consensus": None}, "takes no 'consensus'"),
        ({"method": "slerp", "t": 0.5, "weights": (1.0,)}, "takes no 'weights'"),
        ({"method": "ties", "rescale": "l1"}, "takes no 'rescale'"),
        ({"method": "task_arithmetic", "t": 0.5}, "takes no 't'"),
        ({"method": "slerp"}, "needs t"),
        ({"method": "slerp", "t": 1.5}, r"t must lie in \[0.0, 1.0\]"),
        ({"method": "ties", "density": -0.1}, "density must lie"),
        ({"method": "ties", "density": (0.5, 2.0)}, "density must lie"),
        ({"method": "linear", "weights": (1.0, float("nan"))}, "finite"),
        ({"method": "linear", "weights": ()}, "non-empty"),
        ({"method": "linear", "weights": (1.0, -1.0)}, "sum to 0"),
        ({"method": "dare", "consensus": "majority"}, "consensus must be"),
        ({"method": "dare", "rescale": "l2"}, "rescale must be"),
        ({"method": "dare", "seed": -1}, "non-negative"),
        ({"method": "dare", "seed": True}, "non-negative"),
        ({"method": "ties", "normalize": "yes"}, "true or false"),
    ],
)
def test_a_bad_merge_spec_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        MergeSpec(**kwargs)


def test_a_spec_records_its_resolved_parameters_with_floats_as_strings() -> None:
    spec = MergeSpec(method="ties", density=0.5, weights=(1, 0.25))
    record = spec.to_record()
    assert record == {
        "method": "ties",
        "seed": 0,
        "weights": ["1.0", "0.25"],
        "density": "0.5",
        "lambda": "1.0",
        "normalize": True,
        "consensus": "sum",
    }
    assert canonical.decode(canonical.encode(record)) == record
    assert MergeSpec(method="slerp", t=0.1).to_record() == {
        "method": "slerp",
        "seed": 0,
        "t": "0.1",
    }


_numbers = st.floats(min_value=0, max_value=1, allow_nan=False)


@st.composite
def _specs(draw: st.DrawFn) -> MergeSpec:
    method = draw(st.sampled_from(sorted(MERGE_METHODS)))
    params = MERGE_METHODS[method].parameters
    kwargs: dict[str, Any] = {"method": method, "seed": draw(st.integers(0, 2**64))}
    if "weights" in params:
        kwargs["weights"] = draw(
            st.none()
            | st.lists(st.floats(0.01, 10, allow_nan=False), min_size=1, max_size=4).map(tuple)
        )
    if "density" in params:
        kwargs["density"] = draw(
            st.none() | _numbers | st.lists(_numbers, min_size=1, max_size=4).map(tuple)
        )
    if "lambda" in params:
        kwargs["lambda_"] = draw(st.none() | st.floats(-5, 5, allow_nan=False))
    if "normalize" in params:
        kwargs["normalize"] = draw(st.none() | st.booleans())
    if "t" in params:
        kwargs["t"] = draw(_numbers)
    if "consensus" in params:
        kwargs["consensus"] = draw(st.sampled_from(["sum", "count", None]))
    if "rescale" in params:
        kwargs["rescale"] = draw(st.sampled_from(["density", "l1", "none", None]))
    return MergeSpec(**kwargs)


@settings(max_examples=60, deadline=None)
@given(_specs())
def test_a_spec_record_is_canonical_json_and_rebuilds_a_spec_that_records_the_same(
    spec: MergeSpec,
) -> None:
    record = spec.to_record()
    assert canonical.decode(canonical.encode(record)) == record
    assert MergeSpec.from_record(record).to_record() == record


def test_a_record_with_unknown_or_unparsable_fields_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="unknown merge spec field"):
        MergeSpec.from_record({"method": "linear", "seed": 0, "temperature": "1"})
    with pytest.raises(InvalidRequest, match="recorded as strings"):
        MergeSpec.from_record({"method": "ties", "seed": 0, "density": 0.5})
