"""breedlab.report.html: the round report as a self-contained, escaped, explainable document."""

from __future__ import annotations

import copy
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest

import breedlab.report as report
from breedlab import canonical
from breedlab.errors import InvalidRequest
from breedlab.report import render_round_report

SVG_NS = "http://www.w3.org/2000/svg"


class _Document(HTMLParser):
    """Start tags, attributes and text of a document, by the standard library's parser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Document:
    document = _Document()
    document.feed(html)
    document.close()
    return document


def _plain(fragment: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed."""
    return " ".join(" ".join(_parse(fragment).text).split())


def _svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", html, flags=re.S)]


def _find(pattern: str, html: str) -> str:
    match = re.search(pattern, html, flags=re.S)
    assert match is not None, pattern
    return match.group(0)


def _sentence(html: str) -> str:
    match = re.search(r'<p class="sentence">(.*?)</p>', html, flags=re.S)
    assert match is not None
    return _plain(match.group(1))


def _articles(html: str) -> list[str]:
    return re.findall(r'<article class="candidate".*?</article>', html, flags=re.S)


def _number(text: str) -> float:
    return float(_plain(text).replace("−", "-"))


def test_the_public_surface_is_pinned() -> None:
    assert sorted(report.__all__) == [
        "ROUND_SCHEMA",
        "Round",
        "pareto_front",
        "read_round",
        "render_round_report",
    ]
    for name in report.__all__:
        assert hasattr(report, name)


def test_the_header_names_round_capability_champion_cluster_suite_seed_and_time(
    round_record: dict[str, Any],
) -> None:
    html = render_round_report(round_record)
    header = _plain(_find(r"<header>.*?</header>", html))
    for expected in (
        "round-17",
        "digits",
        round_record["champion"],
        round_record["suite"],
        "shifted-strokes",
        round_record["cluster"]["id"],
        "2026-03-02T10:15:03Z",
        "2026-03-02T10:19:41Z",
        "took 4 min 38 s",
        "Seed 0",
        "4 scored, 1 failed",
    ):
        assert expected in header, expected
    assert "<title>breedlab round-17 · digits</title>" in html


def test_a_winner_is_named_in_one_sentence_with_its_action(round_record: dict[str, Any]) -> None:
    winner = next(c for c in round_record["candidates"] if c["package"] == round_record["winner"])
    sentence = _sentence(render_round_report(round_record))
    assert sentence.startswith(f"Winner: {winner['label']} ({winner['name']}) goes to shadow")
    assert "confirmed on the sealed split" in sentence
    assert sentence.count(".") <= 2  # one sentence: the period in U's decimals and the end


def test_no_winner_says_why_and_names_the_closest_candidate(round_record: dict[str, Any]) -> None:
    round_record["winner"], round_record["action"] = None, "archive"
    for candidate in round_record["candidates"]:
        if candidate["outcome"] == "shadow":
            candidate["outcome"] = "archive"
    html = render_round_report(round_record)
    assert _sentence(html) == (
        "No winner: none of the 4 scored candidates passed every gate with confirmation on "
        "the sealed split (2 archive, 1 no-op, 1 retire; 1 failed), so the champion stays and "
        "the round's candidates are archived with their outcomes."
    )
    decision = _plain(_find(r'<section class="decision.*?</section>', html))
    assert "Closest: adapter/r8-cluster" in decision


def test_a_winner_missing_from_the_candidates_is_named_by_its_id(
    round_record: dict[str, Any],
) -> None:
    round_record["winner"] = "sha256:" + "ab" * 32
    html = render_round_report(round_record)
    sentence = _sentence(html)
    assert sentence.startswith("Winner: sha256:abababababab… goes to shadow")
    assert sentence.endswith("it is not among the candidates listed in this record.")
    assert "Closest:" not in html


def test_one_failed_run_and_no_candidates_reads_as_one(round_record: dict[str, Any]) -> None:
    round_record.update(candidates=[], decisions=[], winner=None, action="archive")
    assert _sentence(render_round_report(round_record)) == (
        "No winner: the only operator run failed before a candidate could be scored, so the "
        "champion stays."
    )


def test_the_scorecard_table_lists_the_champion_first_then_every_candidate(
    round_record: dict[str, Any],
) -> None:
    html = render_round_report(round_record)
    table = _find(r'<section id="scorecards">.*?</section>', html)
    rows = re.findall(r"<tr\b.*?</tr>", table, flags=re.S)[1:]
    assert len(rows) == 1 + len(round_record["candidates"])
    assert _plain(rows[0]).startswith("champion")
    for row, candidate in zip(rows[1:], round_record["candidates"], strict=True):
        text = _plain(row)
        assert text.startswith(candidate["label"])
        assert candidate["name"] in text
        assert f'class="badge o-{candidate["outcome"]}"' in row
        dev = candidate["scorecard"]["dev"]
        assert f"{100 * float(dev['accuracy']):.1f}%" in text
        assert f"{100 * float(dev['robust_accuracy']):.1f}%" in text
        assert f"{float(dev['ece']):.3f}" in text
        assert f"{candidate['scorecard']['resources']['parameters']:,}" in text
    retired = next(r for r in rows if "o-retire" in r)
    assert '<span class="bad">2</span> / 50' in retired  # critical errors stand out


def test_every_candidate_has_an_explanation_with_every_metric_verdict(
    round_record: dict[str, Any],
) -> None:
    html = render_round_report(round_record)
    articles = _articles(html)
    assert len(articles) == len(round_record["candidates"])
    shown = {
        "better": "Better",
        "pass": "Pass",
        "inconclusive": "Inconclusive",
        "worse": "Worse",
        "critical": "Critical",
        "no_data": "NoData",
    }
    by_package = {d["candidate"]: d for d in round_record["decisions"]}
    for article, candidate in zip(articles, round_record["candidates"], strict=True):
        text = _plain(article)
        assert candidate["label"] in text and candidate["name"] in text
        assert f"Why {candidate['outcome']}" in text
        for reason in candidate["reasons"]:
            assert " ".join(reason.split()) in text
        metrics = by_package[candidate["package"]]["assessment"]["metrics"]
        rows = re.findall(
            r"<tr><td><strong>.*?</tr>", article.split("Utility decomposition")[0], flags=re.S
        )
        assert len(rows) == len(metrics)
        for row, metric in zip(rows, metrics, strict=True):
            row_text = _plain(row)
            assert row_text.startswith(metric["metric"])
            assert f"v-{metric['verdict']}" in row and shown[metric["verdict"]] in row_text
            assert " ".join(metric["reason"].split()) in row_text
            if metric["lower"] is not None:
                assert f"[{float(metric['lower']):+.4g}, {float(metric['upper']):+.4g}]" in row_text
    verdicts = {m["verdict"] for d in round_record["decisions"] for m in d["assessment"]["metrics"]}
    assert {"better", "pass", "critical", "inconclusive"} <= verdicts  # the record is varied


def test_the_printed_utility_terms_sum_to_the_printed_u(round_record: dict[str, Any]) -> None:
    html = render_round_report(round_record)
    checked = 0
    for article, decision in zip(_articles(html), round_record["decisions"], strict=True):
        terms = [_number(t) for t in re.findall(r'<td class="num term">(.*?)</td>', article)]
        total = re.search(r'<td class="num utility-sum">(.*?)</td>', article, flags=re.S)
        assert total is not None
        recorded = decision["assessment"]["decomposition"]
        assert len(terms) == len(recorded["terms"])
        u = _number(total.group(1))
        assert u == pytest.approx(float(recorded["utility"]), abs=0.5e-4)
        # Each printed term is within half a unit of the 4th decimal of the exact one.
        assert abs(math.fsum(terms) - u) <= 0.5e-4 * (len(terms) + 1)
        assert 'class="warn"' not in article  # the record's terms sum exactly to its U
        checked += 1
    assert checked == 4


def test_terms_that_do_not_sum_to_the_recorded_u_are_flagged(round_record: dict[str, Any]) -> None:
    decomposition = round_record["decisions"][0]["assessment"]["decomposition"]
    decomposition["utility"] = repr(float(decomposition["utility"]) + 0.25)
    article = _articles(render_round_report(round_record))[0]
    assert "The terms sum to" in _plain(article)
    assert 'class="warn"' in article


def test_failed_candidates_are_listed_with_their_reasons(round_record: dict[str, Any]) -> None:
    round_record["failed"].append(
        {
            "operator": "merge",
            "label": "merge/slerp",
            "failure": "evaluation",
            "reason": "outputs missing: dev/noise",
        }
    )
    html = render_round_report(round_record)
    section = _plain(_find(r'<section id="failed">.*?</section>', html))
    for failure in round_record["failed"]:
        for field in ("operator", "label", "failure", "reason"):
            assert failure[field] in section


def test_the_charts_are_well_formed_svg(round_record: dict[str, Any]) -> None:
    svgs = _svgs(render_round_report(round_record))
    assert len(svgs) == 3  # quality v latency, quality v size, reliability
    for root in svgs:
        assert root.tag == f"{{{SVG_NS}}}svg"
        assert root.find(f"{{{SVG_NS}}}title") is not None
    latency, size, reliability = svgs
    for chart in (latency, size):
        labels = [
            t.text or "" for t in chart.iter(f"{{{SVG_NS}}}text") if t.get("class") == "label"
        ]
        assert sorted(labels) == sorted(
            ["champion", *(c["label"] for c in round_record["candidates"])]
        )
        assert len(chart.findall(f".//{{{SVG_NS}}}polygon[@class='mark champion']")) == 1
        assert len(chart.findall(f".//{{{SVG_NS}}}circle[@class='winner']")) == 1
        assert len(chart.findall(f".//{{{SVG_NS}}}path[@class='pareto-front']")) == 1
        texts = "".join(chart.itertext())
        assert "dev robust_accuracy" in texts  # the primary metric from the policy
    bins = reliability.findall(f".//{{{SVG_NS}}}circle[@class='bin']")
    assert len(bins) == 20  # ten bins each for the champion and the winner
    legend = [t.text for t in reliability.iter(f"{{{SVG_NS}}}text")]
    assert legend[legend.index("champion") :][:3] == ["champion", "adapter/r8-cluster", "winner"]


def test_the_report_loads_nothing_from_anywhere(round_record: dict[str, Any]) -> None:
    html = render_round_report(round_record)
    urls = re.findall(r"https?://[^\s\"'<>)]*", html)
    assert urls and set(urls) == {SVG_NS}  # only the SVG namespace, which is a name
    tags = _parse(html).tags
    assert not [t for t, _ in tags if t in ("script", "link", "img", "iframe", "object", "embed")]
    for tag, attrs in tags:
        assert "src" not in attrs, tag
        assert not [k for k in attrs if k.startswith("on")], tag  # no event handlers
        href = attrs.get("href")
        assert href is None or href.startswith("#"), href
    assert "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html  # the browser refuses any fetch as well


def test_strings_from_the_record_are_escaped(round_record: dict[str, Any]) -> None:
    attack = "<script>alert(1)</script>"
    candidate = round_record["candidates"][0]
    candidate["name"] = attack
    candidate["label"] = '"><img src=x onerror=alert(2)>'
    candidate["reasons"] = ["Δ & <b>bold</b> 'quoted'"]
    candidate["params"] = {"<k>": "</code><script>x</script>"}
    round_record["cluster"]["description"] = attack
    round_record["failed"][0]["reason"] = attack
    round_record["round"] = "</title><script>alert(3)</script>"
    round_record["decisions"][0]["assessment"]["metrics"][0]["reason"] = attack
    html = render_round_report(round_record)
    assert "<script" not in html and "<img" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Δ &amp; &lt;b&gt;bold&lt;/b&gt; &#x27;quoted&#x27;" in html
    tags = _parse(html).tags
    assert not [t for t, _ in tags if t in ("script", "img")]
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")]
    assert len(_svgs(html)) == 3  # the escaped label still leaves well-formed SVG
    assert '"><img src=x onerror=alert(2)>' in "".join(_parse(html).text)


def test_the_same_record_gives_the_same_bytes(round_record: dict[str, Any]) -> None:
    first = render_round_report(round_record)
    stored = canonical.decode(canonical.encode(round_record))  # as read back from the blob
    assert render_round_report(stored) == first
    assert render_round_report(copy.deepcopy(round_record)) == first


def test_the_quality_axis_is_the_policy_s_primary_metric(round_record: dict[str, Any]) -> None:
    for metric in round_record["policy"]["metrics"]:
        metric["role"] = "primary" if metric["name"] == "accuracy" else "guardrail"
    html = render_round_report(round_record)
    latency = _svgs(html)[0]
    assert "dev accuracy" in "".join(latency.itertext())
    assert 'title="the primary metric">Dev acc ★</th>' in html


def test_a_lower_is_better_primary_metric_is_labelled_so(round_record: dict[str, Any]) -> None:
    for metric in round_record["policy"]["metrics"]:
        metric["role"] = "primary" if metric["name"] == "nll" else "guardrail"
    latency = _svgs(render_round_report(round_record))[0]
    assert "dev nll (lower is better)" in "".join(latency.itertext())
    assert "lower quality, lower cost" in "".join(latency.itertext())


def _without_candidates(record: dict[str, Any]) -> dict[str, Any]:
    record.update(candidates=[], decisions=[], failed=[], winner=None, action="archive")
    return record


def _all_failed(record: dict[str, Any]) -> dict[str, Any]:
    failed = [
        {"operator": c["operator"], "label": c["label"], "failure": "error", "reason": "exit 1"}
        for c in record["candidates"]
    ]
    record.update(candidates=[], decisions=[], failed=failed, winner=None, action="archive")
    return record


def _no_reliability(record: dict[str, Any]) -> dict[str, Any]:
    for card in [record["champion_scorecard"], *(c["scorecard"] for c in record["candidates"])]:
        del card["dev"]["reliability"]
        del card["sealed"]["reliability"]
    return record


def _bare(record: dict[str, Any]) -> dict[str, Any]:
    """Only the schema: every other field missing."""
    return {"schema": record["schema"]}


def _damaged(record: dict[str, Any]) -> dict[str, Any]:
    """Fields of the wrong type or unparseable numbers everywhere."""
    record["champion_scorecard"] = None
    record["policy"] = "not a policy"
    record["cluster"] = None
    record["seed"] = "zero"
    card = record["candidates"][0]["scorecard"]
    card["dev"]["accuracy"] = "n/a"
    card["dev"]["robust_accuracy"] = "nan"
    card["dev"]["reliability"] = [{"confidence": "x"}, {"confidence": "2", "accuracy": "0.5"}]
    card["resources"] = {"latency_p95_ms": "inf"}
    record["candidates"][1]["params"] = ["not", "a", "mapping"]
    record["candidates"][2]["scorecard"] = None
    record["decisions"][0]["assessment"]["decomposition"]["terms"][0]["value"] = None
    record["started"] = "yesterday"
    return record


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_without_candidates, "No winner: no candidate was produced in this round"),
        (_all_failed, "No winner: all 4 operator runs failed before a candidate could be scored"),
        (_no_reliability, "Winner: adapter/r8-cluster"),
        (_bare, "No winner: no candidate was produced in this round"),
        (_damaged, "Winner: adapter/r8-cluster"),
    ],
)
def test_partial_and_empty_rounds_still_render(
    round_record: dict[str, Any], edit: Any, expected: str
) -> None:
    html = render_round_report(edit(round_record))
    assert _sentence(html).startswith(expected)
    svgs = _svgs(html)
    assert len(svgs) == 3
    assert html.startswith("<!DOCTYPE html>") and html.endswith("</html>\n")


def test_a_round_with_only_the_champion_plots_one_point_and_no_front(
    round_record: dict[str, Any],
) -> None:
    latency, _, reliability = _svgs(render_round_report(_without_candidates(round_record)))
    assert len(latency.findall(f".//{{{SVG_NS}}}polygon[@class='mark champion']")) == 1
    assert latency.findall(f".//{{{SVG_NS}}}circle[@class='mark']") == []
    assert latency.findall(f".//{{{SVG_NS}}}path[@class='pareto-front']") == []
    assert len(reliability.findall(f".//{{{SVG_NS}}}circle[@class='bin']")) == 10


def test_missing_reliability_bins_are_said_not_drawn(round_record: dict[str, Any]) -> None:
    html = render_round_report(_no_reliability(round_record))
    reliability = _svgs(html)[2]
    assert reliability.findall(f".//{{{SVG_NS}}}circle[@class='bin']") == []
    assert "no reliability bins in the record" in "".join(reliability.itertext())


def test_models_without_values_are_named_under_the_chart(round_record: dict[str, Any]) -> None:
    html = render_round_report(_damaged(round_record))
    captions = [_plain(c) for c in re.findall(r"<figcaption>.*?</figcaption>", html, flags=re.S)]
    assert "Not plotted: champion (no latency p95 or dev robust_accuracy)" in captions[0]
    assert "adapter/r8-cluster (no latency p95 or dev robust_accuracy)" in captions[0]
    assert "distill/t2-student (no latency p95 or dev robust_accuracy)" in captions[0]


@pytest.mark.parametrize("record", [{"schema": "breedlab.round/v0"}, {}, ["not", "a", "record"]])
def test_a_record_that_is_not_a_round_is_refused(record: Any) -> None:
    with pytest.raises(InvalidRequest, match="round record"):
        render_round_report(record)
