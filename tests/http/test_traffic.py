"""The traffic client's rules, without a server: only loopback URLs, requests made from a
dataset with labels named by the capability's contract, nearest-rank percentiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from breedlab.capabilities import contract_path
from breedlab.datasets import write_dataset
from breedlab.errors import InvalidRequest, NotFound, PolicyError
from breedlab.http.traffic import TrafficSummary, dataset_requests, loopback_url, request_body
from breedlab.lab import Lab


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("  http://127.3.4.5:1  ", "http://127.3.4.5:1"),  # all of 127/8 is loopback
        ("http://localhost:8000", "http://localhost:8000"),
        ("https://LOCALHOST", "https://LOCALHOST"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_a_loopback_url_is_kept_as_its_base(url: str, base: str) -> None:
    assert loopback_url(url) == base


@pytest.mark.parametrize(
    "url",
    [
        "http://192.0.2.1:8000",  # TEST-NET-1: never this machine
        "http://10.0.0.1",
        "http://0.0.0.0:8000",  # "any address" is not an address to send to
        "http://example.org",
        "http://localhost.example.org",  # a name could resolve anywhere
        "http://[2001:db8::1]:8000",
        "http://[::ffff:127.0.0.1]:8000",  # mapped: not taken for loopback (fail closed)
    ],
)
def test_a_host_that_is_not_this_machine_is_refused_by_policy(url: str) -> None:
    with pytest.raises(PolicyError, match="loopback"):
        loopback_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "127.0.0.1:8000",  # no scheme
        "not a url",
        "ftp://127.0.0.1",
        "http://",
        "http://127.0.0.1:99999",  # no such port
        "http://127.0.0.1:80x",
        "http://127.0.0.1:8000/v1/digits/predict",  # a route, not the server
        "http://127.0.0.1:8000?x=1",
        "http://user@127.0.0.1:8000",
    ],
)
def test_a_url_that_is_not_a_server_base_url_is_an_invalid_request(url: str) -> None:
    with pytest.raises(InvalidRequest):
        loopback_url(url)


def test_percentiles_are_nearest_rank() -> None:
    # By hand: sorted 0.1..0.5; p50 is the ceil(2.5) = 3rd value, p95 the ceil(4.75) = 5th.
    summary = TrafficSummary(
        url="http://127.0.0.1:1",
        capability="digits",
        sent=5,
        answered=5,
        errors=0,
        latencies_s=(0.5, 0.1, 0.4, 0.2, 0.3),
    )
    assert summary.percentile(0.5) == 0.3
    assert summary.percentile(0.95) == 0.5
    twenty = TrafficSummary(
        url="u", capability="c", sent=20, answered=20, errors=0, latencies_s=tuple(range(1, 21))
    )
    assert twenty.percentile(0.95) == 19  # ceil(19.0): the 19th of 20
    assert twenty.percentile(0.5) == 10
    empty = TrafficSummary(url="u", capability="c", sent=1, answered=0, errors=1)
    assert empty.percentile(0.5) is None
    assert empty.to_record()["latency_s"] == {"p50": None, "p95": None}


def test_request_i_is_item_i_cycling_from_unit_user_i() -> None:
    items = [{"inputs": [0.0]}, {"inputs": [1.0]}]
    assert [request_body(items, i) for i in range(3)] == [
        {"inputs": [0.0], "unit": "user-0"},
        {"inputs": [1.0], "unit": "user-1"},
        {"inputs": [0.0], "unit": "user-2"},
    ]


def _letters(tmp_path: Path) -> Path:
    """The digits contract under another name whose labels are not the class indices."""
    text = contract_path("digits").read_text("utf-8")
    text = text.replace('name = "digits"', 'name = "letters"')
    labels = ", ".join(f'"{c}"' for c in "abcdefghij")
    text = text.replace(
        'labels = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]', f"labels = [{labels}]"
    )
    assert '"j"' in text
    path = tmp_path / "letters.toml"
    path.write_text(text, "utf-8")
    return path


def _folder(path: Path, y: list[int], *, scale: float = 1.0) -> Path:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 16, size=(len(y), 64)) * scale
    write_dataset(path, x=x, y=np.array(y), ids=[f"i{n}" for n in range(len(y))])
    return path


def test_requests_carry_the_label_the_contract_names_for_each_item(
    lab: Lab, tmp_path: Path
) -> None:
    lab.add_capability(_letters(tmp_path))
    folder = _folder(tmp_path / "data", [0, 3, 9])
    shown, bodies = dataset_requests(lab, "letters", str(folder))
    assert shown == str(folder)
    assert [b["label"] for b in bodies] == ["a", "d", "j"]
    assert all(len(b["inputs"]) == 64 and "unit" not in b for b in bodies)  # type: ignore[arg-type]
    _, unlabelled = dataset_requests(lab, "letters", str(folder), labels=False)
    assert all("label" not in b for b in unlabelled)
    with pytest.raises(InvalidRequest, match="label index 10"):
        dataset_requests(lab, "letters", str(_folder(tmp_path / "bad", [1, 10])))


def test_the_default_is_the_dev_split_and_a_package_must_be_a_dataset_of_the_capability(
    lab: Lab, tmp_path: Path
) -> None:
    with pytest.raises(NotFound, match="no dev split") as e:
        dataset_requests(lab, "digits")
    assert e.value.hint is not None and "--dataset" in e.value.hint
    folder = _folder(tmp_path / "dev", [7, 1])
    data = lab.import_path(
        folder, kind="dataset", capability="digits", license="CC-BY-4.0", sign_with="erin"
    )
    lab.set_alias("digits", "data-dev", str(data.id))
    shown, bodies = dataset_requests(lab, "digits")
    assert shown == f"digits@data-dev ({data.id.short})"
    assert [b["label"] for b in bodies] == ["7", "1"]
    assert dataset_requests(lab, "digits", str(data.id)[7:19])[1] == bodies  # a prefix
    lab.add_capability(_letters(tmp_path))
    with pytest.raises(InvalidRequest, match="not a dataset of 'letters'"):
        dataset_requests(lab, "letters", "digits@data-dev")
    [capability] = [p for p in lab.capabilities() if p.manifest.capability == "digits"]
    with pytest.raises(InvalidRequest, match="not a dataset"):
        dataset_requests(lab, "digits", str(capability.id))
