"""Seeded perturbations and OOD images: deterministic per (seed, kind, item id), in range."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from breedlab.canonical import decode, encode
from breedlab.errors import InvalidRequest
from breedlab.evaluator.perturbations import (
    PERTURBATIONS,
    PIXELS,
    GaussianNoise,
    Occlusion,
    OodKind,
    PerturbationSpec,
    PixelDropout,
    PixelShift,
    item_rng,
    ood_set,
    perturb,
    spec_from_record,
)

SRC = Path(__file__).resolve().parents[3] / "src"
SPECS: tuple[PerturbationSpec, ...] = (
    GaussianNoise(sigma=0.3),
    PixelShift(pixels=1),
    Occlusion(size=3),
    PixelDropout(fraction=0.2),
)


def images(n: int) -> tuple[np.ndarray, list[str]]:
    """Smooth, digit-like test images in 0..1 with ids img-0..img-(n-1)."""
    rng = np.random.default_rng(11)
    x = rng.random((n, PIXELS)) ** 2
    return x, [f"img-{i}" for i in range(n)]


def test_the_catalogue_names_every_kind_once() -> None:
    assert sorted(PERTURBATIONS) == [
        "dropout",
        "feature_noise",
        "missing",
        "noise",
        "occlusion",
        "shift",
    ]
    tabular = {"feature_noise", "missing"}  # tests/unit/evaluator/test_evaluator_tabular.py
    assert {spec.kind for spec in SPECS} == set(PERTURBATIONS) - tabular


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_same_seed_and_id_give_identical_bytes_across_calls(spec: PerturbationSpec) -> None:
    x, ids = images(20)
    first = perturb(spec, x, item_ids=ids, seed=7)
    again = perturb(spec, x.copy(), item_ids=ids, seed=7)
    assert first.tobytes() == again.tobytes()
    assert first.dtype == np.float64
    assert first.shape == x.shape
    assert not np.array_equal(first, x)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_an_items_perturbation_does_not_depend_on_its_batch_or_position(
    spec: PerturbationSpec,
) -> None:
    x, ids = images(12)
    whole = perturb(spec, x, item_ids=ids, seed=3)
    order = np.arange(12)[::-1]
    reversed_batch = perturb(spec, x[order], item_ids=[ids[i] for i in order], seed=3)
    alone = perturb(spec, x[5:6], item_ids=[ids[5]], seed=3)
    assert np.array_equal(reversed_batch[::-1], whole)
    assert np.array_equal(alone[0], whole[5])


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_different_ids_or_seeds_give_different_perturbations(spec: PerturbationSpec) -> None:
    # One image under 20 ids: a shift has only 8 outcomes, so single pairs may collide;
    # the batch as a whole must spread out.
    x, _ = images(1)
    same_image = np.repeat(x, 20, axis=0)
    ids = [f"copy-{i}" for i in range(20)]
    by_id = perturb(spec, same_image, item_ids=ids, seed=0)
    assert len({row.tobytes() for row in by_id}) >= 5
    by_seed = perturb(spec, same_image, item_ids=ids, seed=1)
    assert not np.array_equal(by_id, by_seed)


def _fingerprint_script() -> str:
    return (
        "import hashlib, numpy as np\n"
        "from breedlab.evaluator.perturbations import *\n"
        "x = np.random.default_rng(11).random((12, PIXELS)) ** 2\n"
        "ids = [f'img-{i}' for i in range(12)]\n"
        "specs = [GaussianNoise(sigma=0.3), PixelShift(pixels=1), Occlusion(size=3),"
        " PixelDropout(fraction=0.2)]\n"
        "h = hashlib.sha256()\n"
        "for s in specs: h.update(perturb(s, x, item_ids=ids, seed=42).tobytes())\n"
        "h.update(ood_set(OodKind.NOISE, seed=42, count=3).x.tobytes())\n"
        "print(h.hexdigest())\n"
    )


def test_a_fresh_process_reproduces_the_same_bytes() -> None:
    x, ids = images(12)
    digest = hashlib.sha256()
    for spec in SPECS:
        digest.update(perturb(spec, x, item_ids=ids, seed=42).tobytes())
    digest.update(ood_set(OodKind.NOISE, seed=42, count=3).x.tobytes())
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", _fingerprint_script()],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == digest.hexdigest()


def test_item_generators_are_keyed_by_seed_kind_and_id() -> None:
    draw = item_rng(1, "noise", "a").random()
    assert item_rng(1, "noise", "a").random() == draw
    assert len({draw, item_rng(2, "noise", "a").random(), item_rng(1, "shift", "a").random()}) == 3
    # "1:noise:a1" vs "11:noise:a": the separator keeps keys apart.
    assert item_rng(1, "noise", "a1").random() != item_rng(11, "noise", "a").random()
    with pytest.raises(InvalidRequest, match="seed"):
        item_rng(True, "noise", "a")
    with pytest.raises(InvalidRequest, match="':'"):
        item_rng(1, "noise:a", "b")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_outputs_stay_in_range_and_inputs_are_untouched(spec: PerturbationSpec) -> None:
    x, ids = images(30)
    x[0] = 1.0
    x[1] = 0.0
    before = x.copy()
    out = perturb(spec, x, item_ids=ids, seed=0)
    assert np.array_equal(x, before)
    assert out.min() >= 0.0
    assert out.max() <= 1.0


def test_a_shift_moves_the_whole_image_one_pixel_with_zero_fill() -> None:
    x, ids = images(40)
    out = perturb(PixelShift(pixels=1), x, item_ids=ids, seed=0)
    directions = set()
    for src, got in zip(x.reshape(-1, 8, 8), out.reshape(-1, 8, 8), strict=True):
        matches = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if (dy, dx) == (0, 0):
                    continue
                expected = np.zeros((8, 8))
                expected[max(dy, 0) : 8 + min(dy, 0), max(dx, 0) : 8 + min(dx, 0)] = src[
                    max(-dy, 0) : 8 + min(-dy, 0), max(-dx, 0) : 8 + min(-dx, 0)
                ]
                if np.array_equal(got, expected):
                    matches.append((dy, dx))
        assert len(matches) == 1
        directions.add(matches[0])
    assert len(directions) >= 6  # seeded per item, not one direction for the batch


def test_occlusion_zeroes_one_square_patch_and_dropout_an_exact_pixel_count() -> None:
    ones = np.ones((25, PIXELS))
    ids = [f"i{i}" for i in range(25)]
    occluded = perturb(Occlusion(size=3), ones, item_ids=ids, seed=0).reshape(-1, 8, 8)
    for image in occluded:
        rows, cols = np.nonzero(image == 0)
        assert rows.size == 9
        assert (rows.max() - rows.min(), cols.max() - cols.min()) == (2, 2)
    dropped = perturb(PixelDropout(fraction=0.2), ones, item_ids=ids, seed=0)
    assert PixelDropout(fraction=0.2).count == 13  # round half up of 12.8
    assert np.all((dropped == 0).sum(axis=1) == 13)


def test_noise_levels_of_one_kind_share_their_draws() -> None:
    gray = np.full((3, PIXELS), 0.5)
    ids = ["a", "b", "c"]
    small = perturb(GaussianNoise(sigma=0.01), gray, item_ids=ids, seed=0) - 0.5
    large = perturb(GaussianNoise(sigma=0.04), gray, item_ids=ids, seed=0) - 0.5
    assert np.allclose(large, 4 * small)  # no clipping this close to 0.5


@given(
    st.one_of(
        st.floats(1e-6, 1.0, allow_subnormal=False).map(lambda s: GaussianNoise(sigma=s)),
        st.integers(1, 7).map(lambda p: PixelShift(pixels=p)),
        st.integers(1, 8).map(lambda k: Occlusion(size=k)),
        st.floats(1 / 128, 1.0).map(lambda f: PixelDropout(fraction=f)),
    )
)
def test_spec_records_round_trip_through_canonical_json(spec: PerturbationSpec) -> None:
    record = decode(encode(spec.to_record()))
    assert spec_from_record(record) == spec
    assert record["kind"] == spec.kind


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ({"kind": "blur", "radius": 1}, "unknown perturbation kind"),
        ({"kind": "noise", "sigma": 0.3}, "decimal string"),
        ({"kind": "noise", "sigma": "0.30"}, "must be written '0.3'"),
        ({"kind": "noise", "sigma": "abc"}, "not a number"),
        ({"kind": "noise", "sigma": "0.3", "extra": 1}, "keys"),
        ({"kind": "shift", "pixels": "1"}, "integer"),
        ({"kind": "shift", "pixels": 8}, "1..7"),
        ({"kind": "occlusion", "size": 0}, "1..8"),
        ({"kind": "dropout", "fraction": "1.5"}, r"\(0, 1\]"),
        ({"kind": "noise", "sigma": "nan"}, r"\(0, 1\]"),
        ({"kind": "dropout", "fraction": "0.005"}, "drops no pixel"),
    ],
)
def test_malformed_records_are_refused(record: dict[str, object], why: str) -> None:
    with pytest.raises(InvalidRequest, match=why):
        spec_from_record(record)


@pytest.mark.parametrize(
    ("x", "ids", "why"),
    [
        (np.full((2, PIXELS), 16.0), ["a", "b"], "0..1"),
        (np.zeros((2, 8, 8)), ["a", "b"], "shape"),
        (np.zeros((2, PIXELS), dtype=np.int64), ["a", "b"], "floating"),
        (np.zeros((2, PIXELS)), ["a"], "for 2 items"),
        (np.zeros((2, PIXELS)), ["a", "a"], "unique"),
    ],
)
def test_unscaled_misshapen_or_misnamed_images_are_refused(
    x: np.ndarray, ids: list[str], why: str
) -> None:
    with pytest.raises(InvalidRequest, match=why):
        perturb(GaussianNoise(), x, item_ids=ids, seed=0)


def test_ood_sets_are_seeded_named_and_in_range() -> None:
    noise = ood_set(OodKind.NOISE, seed=5, count=4)
    assert noise.item_ids == ("ood-noise-0", "ood-noise-1", "ood-noise-2", "ood-noise-3")
    assert np.array_equal(noise.x, ood_set(OodKind.NOISE, seed=5, count=4).x)
    assert not np.array_equal(noise.x, ood_set(OodKind.NOISE, seed=6, count=4).x)
    assert not noise.x.flags.writeable
    blank = ood_set(OodKind.BLANK, seed=5, count=3)
    assert np.all(blank.x == blank.x[:, :1])  # flat pages
    assert len(set(blank.x[:, 0].tolist())) == 3
    for s in (noise, blank):
        assert s.x.shape == (s.x.shape[0], PIXELS)
        assert s.x.min() >= 0.0
        assert s.x.max() <= 1.0


def test_inverted_ood_images_swap_ink_and_paper_of_their_sources() -> None:
    x, ids = images(3)
    inverted = ood_set(OodKind.INVERTED, seed=0, source=x, source_ids=ids)
    assert np.allclose(inverted.x, 1.0 - x)
    assert inverted.item_ids == ("ood-inverted-img-0", "ood-inverted-img-1", "ood-inverted-img-2")
    with pytest.raises(InvalidRequest, match="source images"):
        ood_set(OodKind.INVERTED, seed=0)
    with pytest.raises(InvalidRequest, match="count"):
        ood_set(OodKind.NOISE, seed=0, count=2, source=x, source_ids=ids)
    with pytest.raises(InvalidRequest, match="positive"):
        ood_set(OodKind.BLANK, seed=0, count=0)
