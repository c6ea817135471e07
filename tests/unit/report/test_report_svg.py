"""breedlab.report.svg: the Pareto front and the two charts as well-formed SVG."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from breedlab.report.svg import (
    Point,
    Series,
    pareto_front,
    quality_cost_plot,
    reliability_diagram,
)

NS = "{http://www.w3.org/2000/svg}"
FAST = settings(max_examples=200, deadline=None)

# Few distinct values, so that ties and duplicate points are common.
coordinate = st.integers(min_value=0, max_value=6).map(float)
points = st.lists(st.tuples(coordinate, coordinate), max_size=12)


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[0] and a[1] >= b[1] and a != b


@FAST
@given(points)
def test_no_point_on_the_front_is_dominated(pts: list[tuple[float, float]]) -> None:
    front = pareto_front(pts)
    for i in front:
        assert not any(_dominates(q, pts[i]) for q in pts)


@FAST
@given(points)
def test_every_point_off_the_front_is_dominated_by_one_on_it(
    pts: list[tuple[float, float]],
) -> None:
    front = pareto_front(pts)
    assert len(set(front)) == len(front)
    for i in set(range(len(pts))) - set(front):
        assert any(_dominates(pts[j], pts[i]) for j in front)
    assert bool(front) == bool(pts)


@FAST
@given(points)
def test_the_front_runs_cheapest_first_and_gets_better_as_it_gets_dearer(
    pts: list[tuple[float, float]],
) -> None:
    steps = [pts[i] for i in pareto_front(pts)]
    for (c0, q0), (c1, q1) in itertools.pairwise(steps):
        assert c0 <= c1
        assert q0 <= q1 if c0 < c1 else q0 == q1  # equal points share one place


def test_the_front_of_one_point_is_that_point() -> None:
    assert pareto_front([(3.0, 0.5)]) == [0]
    assert pareto_front([]) == []


def test_the_front_of_a_known_set() -> None:
    pts = [(1.0, 0.5), (2.0, 0.7), (2.0, 0.6), (3.0, 0.7), (0.5, 0.4), (4.0, 0.9)]
    assert pareto_front(pts) == [4, 0, 1, 5]


def _plot(pts: list[Point], *, higher: bool = True) -> ET.Element:
    text = quality_cost_plot(
        pts, title="t", cost_label="cost", quality_label="quality", higher_is_better=higher
    )
    return ET.fromstring(text)


def _p(
    label: str, cost: float, quality: float, *, champion: bool = False, winner: bool = False
) -> Point:
    return Point(
        label=label, cost=cost, quality=quality, colour="#123456", champion=champion, winner=winner
    )


def test_the_step_line_passes_through_every_front_point_and_no_other() -> None:
    pts = [_p("a", 1, 0.5), _p("b", 2, 0.7), _p("c", 3, 0.6), _p("d", 4, 0.9)]
    root = _plot(pts)
    (front,) = (p for p in root.iter(f"{NS}path") if p.get("class") == "pareto-front")
    marks = {
        _label_of(root, m): (float(m.get("cx", "nan")), float(m.get("cy", "nan")))
        for m in root.iter(f"{NS}circle")
        if m.get("class") == "mark"
    }
    corners = _path_corners(front.get("d", ""))
    for label in ("a", "b", "d"):
        assert marks[label] in corners
    assert marks["c"] not in corners


def _label_of(root: ET.Element, mark: ET.Element) -> str:
    title = mark.find(f"{NS}title")
    assert title is not None and title.text is not None
    return title.text


def _path_corners(d: str) -> set[tuple[float, float]]:
    """The points an M/H/V path visits."""
    x = y = math.nan
    corners = set()
    for command, a, b in re.findall(r"([MHV])([-\d.]+)(?:,([-\d.]+))?", d):
        if command == "M":
            x, y = float(a), float(b)
        elif command == "H":
            x = float(a)
        else:
            y = float(a)
        corners.add((x, y))
    return corners


def test_a_lower_is_better_quality_flips_the_front() -> None:
    pts = [_p("a", 1, 0.5), _p("b", 2, 0.3), _p("c", 3, 0.4)]
    root = _plot(pts, higher=False)
    (front,) = (p for p in root.iter(f"{NS}path") if p.get("class") == "pareto-front")
    on = {_label_of(root, m) for m in root.iter(f"{NS}circle") if m.get("class") == "mark"}
    corners = _path_corners(front.get("d", ""))
    xy = {
        _label_of(root, m): (float(m.get("cx", "nan")), float(m.get("cy", "nan")))
        for m in root.iter(f"{NS}circle")
        if m.get("class") == "mark"
    }
    assert on == {"a", "b", "c"}
    assert xy["a"] in corners and xy["b"] in corners and xy["c"] not in corners


def test_a_wide_cost_range_uses_a_log_axis() -> None:
    wide = "".join(_plot([_p("a", 1_000, 0.5), _p("b", 900_000, 0.7)]).itertext())
    narrow = "".join(_plot([_p("a", 1_000, 0.5), _p("b", 2_000, 0.7)]).itertext())
    assert "cost (log scale)" in wide and "log scale" not in narrow
    assert "1k" in wide and "100k" in wide


def test_one_point_plots_without_a_front_and_the_champion_is_a_diamond() -> None:
    root = _plot([_p("champion", 0.08, 0.3, champion=True)])
    assert [m.get("class") for m in root.iter(f"{NS}polygon") if m.get("class")] == [
        "mark champion"
    ]
    assert [p for p in root.iter(f"{NS}path") if p.get("class") == "pareto-front"] == []


def test_no_usable_point_still_draws_a_chart_that_says_so() -> None:
    root = _plot([_p("x", math.nan, 0.3), _p("y", 1.0, math.inf)])
    assert "no model has both values" in "".join(root.itertext())
    assert [m for m in root.iter(f"{NS}circle") if m.get("class") == "mark"] == []


def test_labels_are_escaped_and_read_back_intact() -> None:
    label = "<b>&\"'</b>"
    root = _plot([_p(label, 1.0, 0.5, winner=True), _p("ok", 2.0, 0.6)])
    labels = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "label"]
    assert label in labels


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
anything = st.floats(allow_nan=True, allow_infinity=True)


@FAST
@given(
    st.lists(
        st.tuples(st.text(max_size=40), st.one_of(finite, anything), st.one_of(finite, anything)),
        max_size=8,
    ),
    st.booleans(),
)
def test_any_points_give_well_formed_svg_with_every_usable_point_labelled(
    raw: list[tuple[str, float, float]], higher: bool
) -> None:
    pts = [_p(label or "m", cost, quality) for label, cost, quality in raw]
    root = _plot(pts, higher=higher)
    usable = [
        p for p in pts if all(math.isfinite(v) and abs(v) <= 1e15 for v in (p.cost, p.quality))
    ]
    labels = [t for t in root.iter(f"{NS}text") if t.get("class") == "label"]
    assert len(labels) == len(usable)
    for m in root.iter(f"{NS}circle"):
        if m.get("class") == "mark":
            assert math.isfinite(float(m.get("cx", "nan")))
            assert math.isfinite(float(m.get("cy", "nan")))


def _series(label: str, bins: list[tuple[float, float, int | None]]) -> Series:
    return Series(label=label, bins=tuple(bins), colour="#123456")


def test_the_reliability_diagram_draws_each_bin_and_the_diagonal() -> None:
    text = reliability_diagram(
        [
            _series("champion", [(0.35, 0.3, 27), (0.9, 0.95, 27), (0.6, 0.55, None)]),
            _series("winner", [(0.5, 0.6, 10), (0.7, 0.7, -3)]),  # a nonsense count
        ]
    )
    root = ET.fromstring(text)
    bins = [c for c in root.iter(f"{NS}circle") if c.get("class") == "bin"]
    assert len(bins) == 5
    assert len([p for p in root.iter(f"{NS}polyline") if p.get("fill") == "none"]) >= 2
    assert "perfect calibration" in "".join(root.itertext())


def test_bins_outside_the_unit_square_are_skipped_and_no_bins_are_said() -> None:
    root = ET.fromstring(reliability_diagram([_series("m", [(1.5, 0.5, 3), (math.nan, 0.2, 1)])]))
    assert [c for c in root.iter(f"{NS}circle") if c.get("class") == "bin"] == []
    texts = "".join(root.itertext())
    assert "no reliability bins in the record" in texts and "m\nno bins" in texts
    empty = ET.fromstring(reliability_diagram([]))
    assert "no reliability bins in the record" in "".join(empty.itertext())


def test_the_same_values_give_the_same_svg() -> None:
    pts = [_p("a", 1, 0.5), _p("b", 2, 0.7, winner=True), _p("c", 1.5, 0.6, champion=True)]
    first = quality_cost_plot(pts, title="t", cost_label="c", quality_label="q")
    assert quality_cost_plot(pts, title="t", cost_label="c", quality_label="q") == first
