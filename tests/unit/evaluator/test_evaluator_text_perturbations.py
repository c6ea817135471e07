"""Text perturbations: seeded per (seed, kind, item id), an exact severity per item,
records that round-trip through canonical JSON."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breedlab.canonical import decode, encode
from breedlab.errors import InvalidRequest
from breedlab.evaluator.perturbations import spec_from_record
from breedlab.evaluator.text_perturbations import (
    TEXT_PERTURBATIONS,
    CaseSwap,
    CharTypos,
    TextPerturbation,
    Whitespace,
    WordDropout,
    WordSwap,
    perturb_texts,
)

SPECS: tuple[TextPerturbation, ...] = (
    CharTypos(fraction=0.05),
    CaseSwap(fraction=0.5),
    Whitespace(fraction=0.3),
    WordDropout(fraction=0.1),
    WordSwap(fraction=0.1),
)
TEXTS = (
    "the film is a quiet triumph of craft and patience",
    "an utterly forgettable sequel",
    "Bold",
    "",
    "it looks good but says nothing at all about anything that matters to anyone",
)
IDS = tuple(f"t{i}" for i in range(len(TEXTS)))


def test_the_catalogue_names_the_five_kinds_of_the_issue() -> None:
    assert list(TEXT_PERTURBATIONS) == ["typos", "case", "whitespace", "word_dropout", "word_swap"]
    assert {s.kind for s in SPECS} == set(TEXT_PERTURBATIONS)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_an_items_text_depends_on_seed_kind_and_id_only(spec: TextPerturbation) -> None:
    out = perturb_texts(spec, TEXTS, item_ids=IDS, seed=3)
    reordered = perturb_texts(spec, TEXTS[::-1], item_ids=IDS[::-1], seed=3)[::-1]
    assert out == reordered
    seeds = {perturb_texts(spec, TEXTS, item_ids=IDS, seed=s)[4] for s in range(8)}
    assert len(seeds) > 1  # the long text is perturbed differently under other seeds
    assert out[3] == ""  # nothing to perturb in an empty text


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_records_round_trip_through_canonical_json(spec: TextPerturbation) -> None:
    assert spec_from_record(decode(encode(spec.to_record()))) == spec
    assert type(spec).from_record(spec.to_record()) == spec


def test_word_perturbations_change_exactly_their_count_of_words() -> None:
    text = TEXTS[4]  # 14 words, 13 gaps
    words = text.split()
    [dropped] = perturb_texts(WordDropout(fraction=0.2), [text], item_ids=["x"], seed=0)
    assert len(dropped.split()) == 11  # round_half_up(0.2 · 14) = 3 dropped
    [swapped] = perturb_texts(CaseSwap(fraction=0.2), [text], item_ids=["x"], seed=0)
    assert sum(a != b for a, b in zip(swapped.split(), words, strict=True)) == 3
    [spaced] = perturb_texts(Whitespace(fraction=0.5), [text], item_ids=["x"], seed=0)
    assert spaced.split() == words
    assert len(re.findall(" {2,}", spaced)) == 7  # round_half_up(0.5 · 13) gaps widened
    [moved] = perturb_texts(WordSwap(fraction=0.1), [text], item_ids=["x"], seed=0)
    assert sorted(moved.split()) == sorted(words) and moved != text
    assert perturb_texts(WordDropout(), ["Bold"], item_ids=["x"], seed=0) == ("Bold",)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_typos_edit_some_letter_and_leave_text_without_letters_alone(text: str) -> None:
    [out] = perturb_texts(CharTypos(fraction=0.05), [text], item_ids=["x"], seed=0)
    assert abs(len(out) - len(text)) <= max(1, round(0.05 * len(text)) + 1)
    if not any(c.isalpha() for c in text):
        assert out == text


def test_bad_specs_records_and_inputs_are_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"fraction must be in \(0, 1\]"):
        WordDropout(fraction=0.0)
    with pytest.raises(InvalidRequest, match=r"unknown perturbation kind 'blur'; known: .*'typos'"):
        spec_from_record({"kind": "blur", "fraction": "0.1"})
    with pytest.raises(InvalidRequest, match=r"must be written '0\.1'"):
        spec_from_record({"kind": "case", "fraction": "0.10"})
    with pytest.raises(InvalidRequest, match="keys"):
        spec_from_record({"kind": "case", "fraction": "0.1", "sigma": "0.1"})
    with pytest.raises(InvalidRequest, match="item ids must be unique"):
        perturb_texts(CaseSwap(), ["a", "b"], item_ids=["x", "x"], seed=0)


def test_cases_whose_outcome_needs_no_random_draw_come_out_as_computed_by_hand() -> None:
    def one(spec: TextPerturbation, text: str) -> str:
        return perturb_texts(spec, [text], item_ids=["x"], seed=11)[0]

    assert one(CaseSwap(fraction=1.0), "Hello  big World") == "hELLO BIG wORLD"
    assert one(WordSwap(fraction=0.5), "good film") == "film good"  # 1 swap, only place
    assert one(WordSwap(fraction=1.0), "good film") == "good film"  # 2 swaps undo
    assert len(one(WordDropout(fraction=1.0), "a b c").split()) == 1  # never the last word
    spaced = one(Whitespace(fraction=1.0), "a b c")
    assert re.fullmatch(r"a {2,4}b {2,4}c", spaced)
    assert one(CharTypos(fraction=1.0), "1234 ?!") == "1234 ?!"  # no letters: unchanged
    assert one(CaseSwap(fraction=1.0), "   ") == ""  # whitespace only: no words


def test_a_suite_records_text_perturbations_and_reads_them_back() -> None:
    from breedlab.evaluator import design
    from breedlab.evaluator.suite import Budget, SuiteSpec

    offered = design.perturbation_catalogue(design.Modality.TEXT, None)
    suite = SuiteSpec(
        capability="reviews",
        name="reviews-suite",
        seed=3,
        splits={"dev": "a", "sealed": "b"},
        perturbations=tuple(offered.values()),
        critical_items=(),
        metrics=(),
        policy={},
        budget=Budget(),
    )
    again = SuiteSpec.from_bytes(suite.to_bytes())
    assert again.perturbations == SPECS  # the catalogue's defaults, in catalogue order
    assert again.variants() == ("clean", *TEXT_PERTURBATIONS)
