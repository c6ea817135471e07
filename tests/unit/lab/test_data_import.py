"""Issue 12: a user's own capability -- contract from ``init``, data from a file, split
and stored like digits'."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_wine

from breedlab.datasets import read_dataset, read_text_dataset, write_text_dataset
from breedlab.errors import Conflict, InvalidRequest
from breedlab.lab import Lab
from breedlab.registry.capability import InputType, parse_contract
from breedlab.splits import SPLIT_NAMES, parse_fractions, stratified_split

WINE = load_wine()
FEATURES = [str(n) for n in WINE.feature_names]
LABELS = ["class_0", "class_1", "class_2"]


def _rows() -> list[dict[str, object]]:
    return [
        {"id": f"w{i}", **dict(zip(FEATURES, map(float, x), strict=True)), "y": LABELS[y]}
        for i, (x, y) in enumerate(zip(WINE.data, WINE.target, strict=True))
    ]


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    if path.suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(
                {k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows
            )
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _wine_lab(lab: Lab, tmp_path: Path, **kw: object) -> None:
    out = lab.init_contract(
        tmp_path / "wine.toml",
        "wine",
        task="classification",
        modality="tabular",
        labels=LABELS,
        features=FEATURES,
        **kw,  # type: ignore[arg-type]
    )
    lab.add_capability(out)


@pytest.mark.parametrize("modality", ["tabular", "text", "image"])
def test_an_initialised_contract_is_added_once_its_blanks_are_filled(
    lab: Lab, tmp_path: Path, modality: str
) -> None:
    blank = lab.init_contract(
        tmp_path / "blank.toml", "mine", task="classification", modality=modality
    )
    with pytest.raises(InvalidRequest, match=r"blank.toml: field 'labels'"):
        lab.add_capability(blank)
    filled = blank.read_text().replace("labels = []", 'labels = ["no", "yes"]')
    filled = filled.replace("features = []", 'features = ["a", "b"]')
    (tmp_path / "filled.toml").write_text(filled)
    info = lab.add_capability(tmp_path / "filled.toml")
    assert info.created
    contract = lab.capability("mine")[1]
    assert contract.input_type is InputType("tensor" if modality == "image" else modality)
    assert contract.labels == ("no", "yes")
    with pytest.raises(Conflict, match="never overwrites"):
        lab.init_contract(blank, "mine", task="classification", modality=modality)


def test_a_tabular_contract_without_features_names_the_field(lab: Lab, tmp_path: Path) -> None:
    out = lab.init_contract(
        tmp_path / "t.toml", "tab", task="classification", modality="tabular", labels=["a", "b"]
    )
    with pytest.raises(InvalidRequest, match=r"t.toml: field 'input.features' must be a non-empty"):
        lab.add_capability(out)


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ('type = "tabular"', 'type = "audio"', r"'input.type' must be one of"),
        ('dtype = "float32"', 'dtype = "int8"', r"'input.dtype' must be float32"),
        ("# [input.ranges]", '[input.ranges]\nnope = "0..1"', r"'input.ranges.nope' is not one of"),
        (
            "# [input.ranges]",
            '[input.ranges]\na = "9..1"',
            r"'input.ranges.a' has its minimum above",
        ),
        ('dtype = "float32"', "max_length = 3", r"'input.max_length' applies to text input only"),
        (
            'features = ["a", "a"]',
            'features = ["a", "a"]',
            r"'input.features' lists a feature twice",
        ),
    ],
)
def test_bad_tabular_contracts_name_the_field_and_file(
    tmp_path: Path, old: str, new: str, match: str
) -> None:
    text = Lab.init_contract(
        tmp_path / "c.toml",
        "c",
        task="classification",
        modality="tabular",
        labels=["x", "y"],
        features=["a", "b"],
    ).read_text()
    text = text.replace(
        'features = ["a", "b"]',
        'features = ["a", "a"]' if "twice" in match else 'features = ["a", "b"]',
    )
    assert old in text
    with pytest.raises(InvalidRequest, match=r"^c.toml: field " + match):
        parse_contract(text.replace(old, new).encode(), "c.toml")


def test_a_text_contract_refuses_a_shape_and_needs_a_max_length(tmp_path: Path) -> None:
    text = Lab.init_contract(
        tmp_path / "r.toml", "r", task="classification", modality="text", labels=["neg", "pos"]
    ).read_text()
    assert parse_contract(text.encode(), "r.toml").max_length == 2000
    with pytest.raises(InvalidRequest, match=r"'input.shape' does not apply to text"):
        parse_contract(text.replace("max_length", "shape = [3]\nmax_length").encode(), "r.toml")
    with pytest.raises(InvalidRequest, match=r"'input.max_length' is missing"):
        parse_contract(text.replace("max_length = 2000", "").encode(), "r.toml")


def test_csv_jsonl_and_parquet_of_the_same_rows_give_the_same_packages(
    lab: Lab, tmp_path: Path
) -> None:
    _wine_lab(lab, tmp_path)
    ids = []
    for suffix in (".csv", ".jsonl", ".parquet"):
        path = _write(tmp_path / f"wine{suffix}", _rows())
        result = lab.import_dataset(
            path, capability="wine", label_column="y", id_column="id", seed=3
        )
        ids.append([str(s.package.id) for s in result.splits])
    assert ids[0] == ids[1] == ids[2]
    train = lab.resolve("wine@data-train")
    assert str(train) == ids[0][0]
    folder = lab.supply.workspace.materialise(train, lab.manifest(train))
    data = read_dataset(folder)
    assert data.x.shape[1] == 13 and data.meta["features"] == FEATURES
    row = int(data.ids[0][1:])
    np.testing.assert_array_equal(data.x[0], WINE.data[row].astype(np.float32))


def test_ids_default_to_content_hashes_and_a_repeated_row_is_refused(
    lab: Lab, tmp_path: Path
) -> None:
    _wine_lab(lab, tmp_path)
    rows = _rows()
    result = lab.import_dataset(
        _write(tmp_path / "w.jsonl", rows), capability="wine", label_column="y"
    )
    assert sum(sum(s.labels.values()) for s in result.splits) == len(rows)
    with pytest.raises(
        InvalidRequest, match=r"^row 179: id 'wine-[0-9a-f]{16}' repeats row 5 \(the same content\)"
    ):
        lab.import_dataset(
            _write(tmp_path / "d.jsonl", [*rows, rows[4]]),
            capability="wine",
            label_column="y",
        )


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("alcohol", "abc", r"^row 17, column 'alcohol': 'abc' is not a number$"),
        ("alcohol", "inf", r"^row 17, column 'alcohol': 'inf' is not a finite"),
        ("alcohol", "1e39", r"^row 17, column 'alcohol': '1e39' is not a finite float32"),
        ("alcohol", "", r"^row 17, column 'alcohol': is missing$"),
        ("y", "class_9", r"^row 17, column 'y': 'class_9' is not one of the contract's labels$"),
    ],
)
def test_a_bad_row_names_row_and_column_and_writes_nothing(
    lab: Lab, tmp_path: Path, column: str, value: str, match: str
) -> None:
    _wine_lab(lab, tmp_path)
    rows = _rows()
    rows[16][column] = value
    with lab.ledger.reader() as r:
        head = r.head()[0]
    with pytest.raises(InvalidRequest, match=match):
        lab.import_dataset(_write(tmp_path / "w.csv", rows), capability="wine", label_column="y")
    with lab.ledger.reader() as r:
        assert r.head()[0] == head
    assert lab.alias("wine", "data-train") is None


def test_a_value_outside_the_contracts_range_is_refused(lab: Lab, tmp_path: Path) -> None:
    text = Lab.init_contract(
        tmp_path / "w.toml",
        "wine",
        task="classification",
        modality="tabular",
        labels=LABELS,
        features=FEATURES,
    ).read_text()
    (tmp_path / "w.toml").write_text(
        text.replace("# [input.ranges]", "[input.ranges]").replace("# alcohol =", "alcohol =")
    )
    lab.add_capability(tmp_path / "w.toml")
    assert lab.capability("wine")[1].range_of("alcohol") == (0.0, 20.0)
    rows = _rows()
    rows[2]["alcohol"] = 25.0
    with pytest.raises(
        InvalidRequest, match=r"^row 3, column 'alcohol': 25.0 is outside the contract's range"
    ):
        lab.import_dataset(_write(tmp_path / "w.jsonl", rows), capability="wine", label_column="y")


def test_feature_columns_must_be_the_contracts(lab: Lab, tmp_path: Path) -> None:
    _wine_lab(lab, tmp_path)
    path = _write(tmp_path / "w.csv", _rows())
    with pytest.raises(InvalidRequest, match="must be the contract's features"):
        lab.import_dataset(path, capability="wine", label_column="y", feature_columns=FEATURES[:3])
    with pytest.raises(InvalidRequest, match="takes tabular input: pass --feature-columns"):
        lab.import_dataset(path, capability="wine", label_column="y", text_column="alcohol")
    with pytest.raises(InvalidRequest, match=r"column 'label' is not in the file"):
        lab.import_dataset(path, capability="wine", label_column="label")


def test_splits_are_stratified_sized_by_fraction_and_deterministic() -> None:
    y = [0] * 59 + [1] * 71 + [2] * 48
    fractions = parse_fractions("train=0.6,fitness=0.1,dev=0.15,sealed=0.15")
    a = stratified_split(y, fractions, seed=7)
    assert a == stratified_split(y, fractions, seed=7)
    assert a != stratified_split(y, fractions, seed=8)
    assert sorted(i for rows in a.values() for i in rows) == list(range(len(y)))
    for name in SPLIT_NAMES:
        got = np.bincount(np.asarray(y)[a[name]], minlength=3)
        want = np.bincount(y) * fractions[name]
        assert (got >= 1).all() and (np.abs(got - want) <= 1).all(), (name, got, want)
    tiny = stratified_split([0, 0, 0, 0, 1, 1, 1, 1], fractions, seed=0)
    assert all(sorted(np.asarray([0] * 4 + [1] * 4)[tiny[s]]) == [0, 1] for s in SPLIT_NAMES)


@pytest.mark.parametrize(
    "text",
    [
        "train=0.6,fitness=0.1,dev=0.15",
        "train=0.5,fitness=0.1,dev=0.15,sealed=0.15",
        "train=x",
        "test=1",
    ],
)
def test_bad_fractions_are_refused(text: str) -> None:
    with pytest.raises(InvalidRequest, match="--fractions"):
        parse_fractions(text)


def test_a_text_dataset_round_trips_and_catches_a_changed_string(lab: Lab, tmp_path: Path) -> None:
    written = write_text_dataset(
        tmp_path / "d",
        texts=["gut", "schlecht ü", "ok"],
        y=np.array([1, 0, 1]),
        ids=["a", "b", "c"],
    )
    back = read_text_dataset(tmp_path / "d")
    assert back.texts == written.texts and back.hashes == written.hashes
    assert back.meta["modality"] == "text" and back.y.tolist() == [1, 0, 1]
    (tmp_path / "d" / "texts.json").write_bytes(
        (tmp_path / "d" / "texts.json").read_bytes().replace(b"gut", b"bad")
    )
    from breedlab.errors import IntegrityError

    with pytest.raises(IntegrityError, match="item a does not match its hash"):
        read_text_dataset(tmp_path / "d")


def test_a_text_capability_imports_text_rows(lab: Lab, tmp_path: Path) -> None:
    contract = lab.init_contract(
        tmp_path / "r.toml",
        "reviews",
        task="classification",
        modality="text",
        labels=["neg", "pos"],
    )
    contract.write_text(contract.read_text().replace("max_length = 2000", "max_length = 40"))
    lab.add_capability(contract)
    rows = [
        {"text": f"review number {i} " + ("good" if i % 2 else "bad"), "y": ["neg", "pos"][i % 2]}
        for i in range(40)
    ]
    result = lab.import_dataset(
        _write(tmp_path / "r.jsonl", rows),
        capability="reviews",
        label_column="y",
        text_column="text",
    )
    assert result.splits[0].labels == {"neg": 12, "pos": 12}
    dev = lab.resolve("reviews@data-dev")
    data = read_text_dataset(lab.supply.workspace.materialise(dev, lab.manifest(dev)))
    assert len(data) == 6 and all(t.startswith("review number") for t in data.texts)
    rows[9]["text"] = "x" * 41
    with pytest.raises(
        InvalidRequest, match=r"^row 10, column 'text': is 41 characters, above max_length 40"
    ):
        lab.import_dataset(
            _write(tmp_path / "r2.jsonl", rows),
            capability="reviews",
            label_column="y",
            text_column="text",
        )


def test_an_interrupted_import_stops_before_writing_and_says_so(lab: Lab, tmp_path: Path) -> None:
    import signal

    from breedlab.errors import Interrupted

    _wine_lab(lab, tmp_path)
    with lab.ledger.reader() as r:
        head = r.head()[0]

    def stop_when_read(message: str) -> None:
        if message.startswith("checked"):
            signal.raise_signal(signal.SIGTERM)  # recorded; raised at the next safe point

    with pytest.raises(Interrupted, match=r"before writing the splits; nothing was recorded after"):
        lab.import_dataset(
            _write(tmp_path / "w.csv", _rows()),
            capability="wine",
            label_column="y",
            progress=stop_when_read,
        )
    with lab.ledger.reader() as r:
        assert r.head()[0] == head
    assert lab.alias("wine", "data-train") is None


def test_a_group_column_keeps_each_group_whole_in_one_split(lab: Lab, tmp_path: Path) -> None:
    """Reviews of one movie in two splits would score what the model memorised about the
    movie: ``--group-column`` deals whole groups."""
    contract = lab.init_contract(
        tmp_path / "r.toml", "reviews", task="classification", modality="text",
        labels=["neg", "pos"],
    )  # fmt: skip
    lab.add_capability(contract)
    rows = [
        {"text": f"movie {m} review {r}", "movie": f"m{m:02d}", "y": ["neg", "pos"][(m + r) % 2]}
        for m in range(40)
        for r in range(1 + m % 5)
    ]
    path = _write(tmp_path / "r.jsonl", rows)
    result = lab.import_dataset(
        path, capability="reviews", label_column="y", text_column="text", group_column="movie"
    )
    seen: dict[str, str] = {}
    for split in SPLIT_NAMES:
        pid = lab.resolve(f"reviews@data-{split}")
        data = read_text_dataset(lab.supply.workspace.materialise(pid, lab.manifest(pid)))
        movies = {t.split()[1] for t in data.texts}  # "movie 7 review 2"
        for movie in movies:
            assert seen.setdefault(movie, split) == split, f"movie {movie} in {split} and more"
        assert data.meta["groups"] == sorted(f"m{int(m):02d}" for m in movies)
    assert len(seen) == 40 and sum(s.package.created for s in result.splits) == 4
    # Roughly the fractions in rows (whole groups of 1-5 rows cannot hit them exactly).
    sizes = {s.split: sum(s.labels.values()) for s in result.splits}
    assert sum(sizes.values()) == len(rows) == 120
    assert 0.45 <= sizes["train"] / 120 <= 0.75 and sizes["dev"] >= 10 and sizes["sealed"] >= 10
    # Deterministic for a seed; another seed deals the groups differently.
    again = lab.import_dataset(
        path, capability="reviews", label_column="y", text_column="text", group_column="movie"
    )
    assert [s.package.id for s in again.splits] == [s.package.id for s in result.splits]
    with pytest.raises(InvalidRequest, match="3 groups cannot fill 4 splits"):
        lab.import_dataset(
            _write(
                tmp_path / "few.jsonl", [r for r in rows if r["movie"] in ("m01", "m02", "m03")]
            ),
            capability="reviews",
            label_column="y",
            text_column="text",
            group_column="movie",
        )
