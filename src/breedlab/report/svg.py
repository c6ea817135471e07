"""Charts as inline SVG: a reliability diagram, and quality versus cost with its Pareto
front.

Owns the geometry: scales (linear, or log10 when a cost range is wide), ticks, marks,
label placement and the Pareto front. Each chart is a pure function from values to one
standalone ``<svg>`` element that is well-formed XML, styled only with presentation
attributes (no CSS, no script, no external reference), so it renders the same inline in
HTML or saved as a file. Every string that reaches the SVG is escaped here; coordinates
are printed with fixed precision, so the same values give the same bytes. Leaves the
choice of what to plot (which models, which metric, which colours) to
:mod:`breedlab.report.html`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from breedlab.report.escape import escape

__all__ = [
    "Point",
    "Series",
    "pareto_front",
    "quality_cost_plot",
    "reliability_diagram",
]

_XMLNS = "http://www.w3.org/2000/svg"
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
_INK, _MUTED, _GRID, _AXIS = "#1f2937", "#6b7280", "#e5e7eb", "#9ca3af"
_FRONT = "#d97706"
_WIDTH, _HEIGHT = 560, 400
_LEFT, _TOP, _BOTTOM = 64, 44, 320
_CHAR_WIDTH, _LINE = 6.3, 13.0  # label box estimate at font-size 11
_LABEL_CHARS = 26
_LIMIT = 1e15  # larger coordinates are not plotted (a petabyte, 10¹⁵ ms)


def _e(text: str) -> str:
    return escape(text)


def _n(value: float) -> str:
    """A coordinate: two decimals, no '-0.00'."""
    return f"{round(value, 2) + 0.0:.2f}"


def _open(title: str, height: int = _HEIGHT) -> list[str]:
    return [
        f'<svg xmlns="{_XMLNS}" viewBox="0 0 {_WIDTH} {height}" width="{_WIDTH}" '
        f'height="{height}" role="img" font-family="{_e(_FONT)}" font-size="12" '
        f'fill="{_INK}">',
        f"<title>{_e(title)}</title>",
        f'<text x="{_LEFT}" y="22" font-size="14" font-weight="600">{_e(title)}</text>',
    ]


def _text(
    x: float,
    y: float,
    text: str,
    *,
    anchor: str = "start",
    size: int = 11,
    fill: str = _MUTED,
    extra: str = "",
) -> str:
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{fill}"{extra}>{_e(text)}</text>'
    )


# -- the Pareto front ---------------------------------------------------------------------------


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """``a`` is at least as cheap and as good as ``b``, and strictly one of the two."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """The indices of the points no other point dominates, cheapest first.

    A point is ``(cost, quality)``: lower cost and higher quality are better (negate a
    lower-is-better quality first). Equal points do not dominate each other, so all of
    them are on the front. Order: cost ascending, then quality descending, then index.
    Points must be finite (not checked). O(n²): a round has tens of candidates.
    """
    front = [
        i
        for i, p in enumerate(points)
        if not any(_dominates(q, p) for j, q in enumerate(points) if j != i)
    ]
    return sorted(front, key=lambda i: (points[i][0], -points[i][1], i))


# -- scales and ticks ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Scale:
    """Maps a value in [lo, hi] (log10 space if ``log``) to [start, end] in pixels."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return self.start + (v - self.lo) / (self.hi - self.lo) * (self.end - self.start)

    def ticks(self) -> list[tuple[float, str]]:
        return _log_ticks(self.lo, self.hi) if self.log else _linear_ticks(self.lo, self.hi)


def _nice_step(span: float, count: int = 5) -> float:
    raw = span / count
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if raw <= m * power * (1 + 1e-9))


def _tick_text(value: float, step: float) -> str:
    """A tick label with as many decimals as the step needs; thousands as k, M, G;
    steps below 10⁻⁴ in exponent form."""
    if step < 1e-4:
        return f"{value + 0.0:.3g}"
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, "")):
        if step >= factor or factor == 1.0:
            scaled = step / factor
            decimals = max(0, -math.floor(math.log10(scaled) + 1e-9))
            return f"{round(value / factor, decimals) + 0.0:.{decimals}f}{suffix}"
    raise AssertionError("unreachable")  # pragma: no cover


def _linear_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    step = _nice_step(hi - lo)
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [(k * step, _tick_text(k * step, step)) for k in range(first, last + 1)]


def _log_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    decades = range(math.floor(lo), math.ceil(hi) + 1)
    stride = max(1, math.ceil(len(decades) / 8))  # at most about 8 labelled decades
    multipliers = (1.0,) if len(decades) > 4 else (1.0, 2.0, 5.0)
    ticks = []
    for k in decades[::stride]:
        for m in multipliers:
            value = m * 10.0**k
            if value > 0 and lo - 1e-9 <= math.log10(value) <= hi + 1e-9:
                ticks.append((value, _tick_text(value, value)))
    return ticks


def _domain(
    values: Sequence[float], *, floor: float | None, ceiling: float | None, log: bool
) -> tuple[float, float]:
    """[lo, hi] around ``values`` with a margin (log10 space if ``log``), never past
    ``floor`` / ``ceiling`` unless the values are. Values closer together than float
    resolution count as one value, which is centred."""
    if log:
        lo, hi = math.log10(min(values)), math.log10(max(values))
        pad = max(0.06 * (hi - lo), 0.05)
        return lo - pad, hi + pad
    lo, hi = min(values), max(values)
    if hi - lo > 1e-9 * max(1.0, abs(lo), abs(hi)):
        pad = 0.08 * (hi - lo)
    else:
        middle = (lo + hi) / 2
        pad = abs(middle) * 0.1 if abs(middle) >= 1e-6 else 1.0
    lo, hi = lo - pad, hi + pad
    if floor is not None and min(values) >= floor:
        lo = max(lo, floor)
    if ceiling is not None and max(values) <= ceiling:
        hi = min(hi, ceiling)
    return lo, hi


def _wide(values: Sequence[float]) -> bool:
    """Log scale when every value is positive and they span at least a factor of 10."""
    return min(values) > 0 and max(values) / min(values) >= 10.0


def _frame(x: _Scale, y: _Scale, *, x_title: str, y_title: str) -> list[str]:
    """Grid, axes, tick labels and axis titles."""
    out = ['<g stroke-width="1">']
    for value, label in x.ticks():
        px = x(value)
        out.append(
            f'<line x1="{_n(px)}" y1="{_n(y.end)}" x2="{_n(px)}" y2="{_n(y.start)}" '
            f'stroke="{_GRID}"/>'
        )
        out.append(_text(px, y.start + 16, label, anchor="middle"))
    for value, label in y.ticks():
        py = y(value)
        out.append(
            f'<line x1="{_n(x.start)}" y1="{_n(py)}" x2="{_n(x.end)}" y2="{_n(py)}" '
            f'stroke="{_GRID}"/>'
        )
        out.append(_text(x.start - 6, py + 4, label, anchor="end"))
    out.append(
        f'<polyline points="{_n(x.start)},{_n(y.end)} {_n(x.start)},{_n(y.start)} '
        f'{_n(x.end)},{_n(y.start)}" fill="none" stroke="{_AXIS}"/>'
    )
    out.append("</g>")
    out.append(
        _text((x.start + x.end) / 2, y.start + 36, x_title, anchor="middle", size=12, fill=_INK)
    )
    cy = (y.start + y.end) / 2
    out.append(
        _text(
            16,
            cy,
            y_title,
            anchor="middle",
            size=12,
            fill=_INK,
            extra=f' transform="rotate(-90 16 {_n(cy)})"',
        )
    )
    return out


# -- the reliability diagram -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    """One model's reliability bins: ``(confidence, accuracy, count)``, count optional.

    ``colour`` is an SVG colour; ``dashed`` draws the line dashed (e.g. the champion);
    ``note`` is a second legend line (e.g. "winner").
    """

    label: str
    bins: tuple[tuple[float, float, int | None], ...]
    colour: str
    dashed: bool = False
    note: str = ""


def _legend_swatch(x: float, y: float, colour: str, dashed: bool) -> str:
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    return (
        f'<line x1="{_n(x)}" y1="{_n(y)}" x2="{_n(x + 22)}" y2="{_n(y)}" '
        f'stroke="{_e(colour)}" stroke-width="2"{dash}/>'
    )


def reliability_diagram(series: Sequence[Series], *, title: str = "Reliability (dev split)") -> str:
    """Accuracy against mean confidence per bin, one line per series, with the diagonal
    of perfect calibration. Marker area grows with the bin's item count. Bins outside
    [0, 1] or not finite are skipped; with no bins at all the chart says so."""
    size = _BOTTOM - _TOP
    x = _Scale(lo=0.0, hi=1.0, start=_LEFT, end=_LEFT + size)
    y = _Scale(lo=0.0, hi=1.0, start=_BOTTOM, end=_TOP)
    out = _open(title)
    out += _frame(x, y, x_title="mean confidence", y_title="accuracy")
    out.append(
        f'<line x1="{_n(x(0))}" y1="{_n(y(0))}" x2="{_n(x(1))}" y2="{_n(y(1))}" '
        f'stroke="{_AXIS}" stroke-dasharray="2 4" stroke-width="1.5"/>'
    )
    drawn = [
        (s, sorted(b for b in s.bins if all(math.isfinite(v) and 0 <= v <= 1 for v in b[:2])))
        for s in series
    ]
    counts = [c for _, bins in drawn for _, _, c in bins if c is not None and c > 0]
    most = max(counts, default=0)
    for s, bins in drawn:
        if not bins:
            continue
        colour = _e(s.colour)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        line = " ".join(f"{_n(x(c))},{_n(y(a))}" for c, a, _ in bins)
        out.append(
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        for c, a, count in bins:
            radius = 3.0 + 4.0 * math.sqrt(count / most) if count and count > 0 and most else 4.0
            items = "" if count is None else f", {count} items"
            tip = f"{s.label}: confidence {c:.3f}, accuracy {a:.3f}{items}"
            out.append(
                f'<circle class="bin" cx="{_n(x(c))}" cy="{_n(y(a))}" r="{_n(radius)}" '
                f'fill="{colour}" fill-opacity="0.85" stroke="#ffffff" stroke-width="1">'
                f"<title>{_e(tip)}</title></circle>"
            )
    if not any(bins for _, bins in drawn):
        out.append(
            _text(
                x(0.04),
                y(0.9),
                "no reliability bins in the record",
                size=12,
            )
        )
    # The legend sits right of the square plot.
    lx, ly = x.end + 24, _TOP + 10
    for s, bins in drawn:
        out.append(_legend_swatch(lx, ly, s.colour, s.dashed))
        out.append(_text(lx + 30, ly + 4, _short(s.label), size=12, fill=_INK))
        note = ", ".join(n for n in (s.note, "" if bins else "no bins") if n)
        if note:
            ly += 15
            out.append(_text(lx + 30, ly + 4, _short(note), size=11))
        ly += 22
    out.append(
        f'<line x1="{_n(lx)}" y1="{_n(ly)}" x2="{_n(lx + 22)}" y2="{_n(ly)}" stroke="{_AXIS}" '
        f'stroke-dasharray="2 4" stroke-width="1.5"/>'
    )
    out.append(_text(lx + 30, ly + 4, "perfect calibration", size=12, fill=_INK))
    out.append(_text(lx, ly + 30, "marker area: items in the bin", size=11))
    out.append(_text(lx, ly + 46, "bins: equal mass (10)", size=11))
    out.append("</svg>")
    return "\n".join(out)


# -- quality versus cost -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Point:
    """One model on the quality-versus-cost plane.

    ``detail`` is the tooltip; ``champion`` draws a diamond, ``winner`` a ring.
    """

    label: str
    cost: float
    quality: float
    colour: str
    champion: bool = False
    winner: bool = False
    detail: str = ""


def _plottable(value: float) -> bool:
    """Finite and at most ``_LIMIT`` in size: no axis spans more sensibly."""
    return math.isfinite(value) and abs(value) <= _LIMIT


def _short(text: str, limit: int = _LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place_labels(
    marks: Sequence[tuple[float, float, str, bool]], x: _Scale, y: _Scale
) -> list[tuple[float, float, str]]:
    """A position and anchor for each mark's label: right of the mark, else left, moved
    up or down a line at a time until it overlaps no mark and no earlier label."""
    taken = [(px - 6, py - 6, px + 6, py + 6) for px, py, _, _ in marks]
    placed = []
    for px, py, text, _ in marks:
        width = _CHAR_WIDTH * len(text)
        choice = (px + 9, py + 4, "start")
        for shift in (0, -1, 1, -2, 2, -3, 3):
            base = py + 4 + shift * _LINE
            options = (
                (px + 9, "start", px + 9, px + 9 + width),
                (px - 9, "end", px - 9 - width, px - 9),
            )
            found = None
            for tx, anchor, left, right in options:
                box = (left, base - _LINE + 3, right, base + 3)
                inside = left >= x.start and right <= x.end + 20 and box[1] >= y.end - 14
                inside = inside and box[3] <= y.start
                if inside and not any(_overlaps(box, t) for t in taken):
                    found = (tx, base, anchor, box)
                    break
            if found is not None:
                choice = found[:3]
                taken.append(found[3])
                break
        placed.append(choice)
    return placed


def quality_cost_plot(
    points: Sequence[Point],
    *,
    title: str,
    cost_label: str,
    quality_label: str,
    higher_is_better: bool = True,
) -> str:
    """A labelled scatter of quality against cost with the Pareto front (higher quality,
    lower cost; for a lower-is-better quality, lower) drawn as a step line through its
    points. The cost axis is log10 when all costs are positive and span 10× or more.
    Points with a non-finite coordinate, or one above 10¹⁵ in size, are skipped; with no
    points the chart says so."""
    usable = [p for p in points if _plottable(p.cost) and _plottable(p.quality)]
    out = _open(title)
    right = _WIDTH - 24
    if not usable:
        x = _Scale(lo=0.0, hi=1.0, start=_LEFT, end=right)
        y = _Scale(lo=0.0, hi=1.0, start=_BOTTOM, end=_TOP)
        out += _frame(x, y, x_title=cost_label, y_title=quality_label)
        out.append(
            _text(
                (x.start + x.end) / 2,
                (y.start + y.end) / 2,
                "no model has both values",
                anchor="middle",
                size=12,
            )
        )
        out.append("</svg>")
        return "\n".join(out)
    costs = [p.cost for p in usable]
    log = _wide(costs)
    lo, hi = _domain(costs, floor=0.0, ceiling=None, log=log)
    x = _Scale(lo=lo, hi=hi, start=_LEFT, end=right, log=log)
    qualities = [p.quality for p in usable]
    qlo, qhi = _domain(qualities, floor=0.0, ceiling=1.0, log=False)
    y = _Scale(lo=qlo, hi=qhi, start=_BOTTOM, end=_TOP)
    scale_note = " (log scale)" if log else ""
    out += _frame(x, y, x_title=cost_label + scale_note, y_title=quality_label)

    sign = 1.0 if higher_is_better else -1.0
    front = pareto_front([(p.cost, sign * p.quality) for p in usable])
    if len(front) > 1:
        first = usable[front[0]]
        path = [f"M{_n(x(first.cost))},{_n(y(first.quality))}"]
        for i in front[1:]:
            path.append(f"H{_n(x(usable[i].cost))}V{_n(y(usable[i].quality))}")
        out.append(
            f'<path class="pareto-front" d="{"".join(path)}" fill="none" stroke="{_FRONT}" '
            f'stroke-width="2.5" '
            f'stroke-linejoin="round" stroke-opacity="0.9"/>'
        )
    on_front = set(front)
    # The champion is drawn last (on top of any model at the same place) but labelled
    # first (its label gets the first choice of place).
    order = sorted(range(len(usable)), key=lambda i: (usable[i].champion, i))
    marks = []
    for i in order:
        p = usable[i]
        px, py = x(p.cost), y(p.quality)
        colour = _e(p.colour)
        tip = _e(p.detail or p.label)
        if p.winner:
            out.append(
                f'<circle class="winner" cx="{_n(px)}" cy="{_n(py)}" r="10" fill="none" '
                f'stroke="{colour}" '
                f'stroke-width="2"/>'
            )
        if p.champion:
            d = 7.5
            shape = (
                f'<polygon class="mark champion" points="{_n(px)},{_n(py - d)} '
                f'{_n(px + d)},{_n(py)} {_n(px)},{_n(py + d)} {_n(px - d)},{_n(py)}" '
                f'fill="{colour}" stroke="#ffffff" stroke-width="1.5">'
                f"<title>{tip}</title></polygon>"
            )
        else:
            ring = (
                f' stroke="{_FRONT}" stroke-width="2"'
                if i in on_front
                else (' stroke="#ffffff" stroke-width="1.5"')
            )
            shape = (
                f'<circle class="mark" cx="{_n(px)}" cy="{_n(py)}" r="5.5" fill="{colour}"{ring}>'
                f"<title>{tip}</title></circle>"
            )
        out.append(shape)
        marks.append((px, py, _short(p.label), p.champion))
    marks.sort(key=lambda m: not m[3])
    for (tx, ty, anchor), (_, _, text, _) in zip(_place_labels(marks, x, y), marks, strict=True):
        out.append(_text(tx, ty, text, anchor=anchor, size=11, fill=_INK, extra=' class="label"'))
    # Legend along the bottom.
    lx, ly = float(_LEFT), _HEIGHT - 14.0
    out.append(
        f'<polygon points="{_n(lx + 6)},{_n(ly - 10)} {_n(lx + 12)},{_n(ly - 4)} '
        f'{_n(lx + 6)},{_n(ly + 2)} {_n(lx)},{_n(ly - 4)}" fill="{_INK}"/>'
    )
    out.append(_text(lx + 18, ly, "champion", size=11, fill=_INK))
    lx += 90
    out.append(
        f'<circle cx="{_n(lx + 6)}" cy="{_n(ly - 4)}" r="8" fill="none" stroke="{_INK}" '
        f'stroke-width="2"/>'
    )
    out.append(_text(lx + 20, ly, "winner", size=11, fill=_INK))
    lx += 80
    out.append(
        f'<path d="M{_n(lx)},{_n(ly)}H{_n(lx + 11)}V{_n(ly - 8)}H{_n(lx + 22)}" fill="none" '
        f'stroke="{_FRONT}" stroke-width="2.5"/>'
    )
    better = "higher" if higher_is_better else "lower"
    out.append(
        _text(lx + 30, ly, f"Pareto front ({better} quality, lower cost)", size=11, fill=_INK)
    )
    out.append("</svg>")
    return "\n".join(out)
