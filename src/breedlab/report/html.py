"""The round report: one self-contained HTML document for one breeding round.

Owns the document: its sections (header, decision, scorecard table, charts, per-candidate
explanations, failed runs, policy), the number formats people read, and the escaping of
every string taken from the record (package names, reasons and parameters are user
data). The document loads nothing: CSS is inline, charts are inline SVG, there is no
script, and a Content-Security-Policy forbids any fetch. No clock or randomness is read,
so the same record gives the same bytes. Leaves reading the record to
:mod:`breedlab.report.record` and chart geometry to :mod:`breedlab.report.svg`.

Why one module of this length: the document is one template. Each section is a
function here and they share the number formats and the escaping; split by section,
every file would import the same dozen formatters and a reader would lose the page's
order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from breedlab.report import svg
from breedlab.report.escape import escape
from breedlab.report.record import (
    Candidate,
    Decision,
    MetricVerdict,
    Round,
    Scorecard,
    Spec,
    Split,
    read_round,
)

__all__ = ["render_round_report"]

_DASH = "—"
_OUTCOMES = ("shadow", "archive", "no-op", "retire")
_RANK = {"shadow": 3, "archive": 2, "no-op": 1, "retire": 0}
#: Outcome colours, shared by the badges (CSS below) and the chart marks.
_COLOURS = {
    "shadow": "#15803d",
    "archive": "#1d4ed8",
    "no-op": "#6b7280",
    "retire": "#b91c1c",
    "champion": "#111827",
}
_OTHER_COLOUR = "#7c3aed"
_VERDICTS = {
    "better": "Better",
    "pass": "Pass",
    "inconclusive": "Inconclusive",
    "worse": "Worse",
    "critical": "Critical",
    "no_data": "NoData",
}
_FALLBACK_PRIMARY = "robust_accuracy"
#: Printed decimals of utility terms and U: the tests hold the printed sum to this.
_UTILITY_DECIMALS = 4

_CSS = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --bg: #f6f7f9; --card: #fff; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
.page { max-width: 1220px; margin: 0 auto; padding: 24px 28px 40px; }
h1 { font-size: 26px; margin: 2px 0 14px; }
h2 { font-size: 18px; margin: 30px 0 12px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 0; }
h4 { font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted);
  margin: 16px 0 6px; }
a { color: #1d4ed8; text-decoration: none; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.kicker { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: .08em; }
.muted { color: var(--muted); }
.warn { color: #991b1b; font-weight: 600; }
dl.meta { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 10px 28px;
  margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 14px 18px; }
dl.meta dt { font-size: 12px; color: var(--muted); }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
.decision { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  border-left: 6px solid #6b7280; padding: 14px 20px; margin-top: 18px; }
.decision.d-shadow { border-left-color: #15803d; }
.decision h2 { margin-top: 0; border: 0; padding: 0; }
.sentence { font-size: 16px; margin: 0 0 6px; }
.decision ul, article ul { margin: 4px 0; padding-left: 20px; }
table { border-collapse: collapse; width: 100%; background: var(--card); }
th, td { padding: 6px 9px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: #f1f3f6;
  white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th.primary, td.primary { background: #fffbeb; }
tr.winner td { background: #f0fdf4; }
tr.winner td.primary { background: #ecfccb; }
tr.champion td { background: #f8fafc; }
.table-wrap { border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
.sub { color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
.bad { color: #b91c1c; font-weight: 600; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px;
  font-weight: 600; color: #fff; white-space: nowrap; line-height: 18px; }
.o-shadow { background: #15803d; } .o-archive { background: #1d4ed8; }
.o-no-op { background: #6b7280; } .o-retire { background: #b91c1c; }
.o-champion { background: #111827; } .o-failed { background: #b45309; }
.o-other { background: #7c3aed; }
.v-better { background: #dcfce7; color: #166534; } .v-pass { background: #e0f2fe; color: #075985; }
.v-inconclusive { background: #fef3c7; color: #92400e; }
.v-worse { background: #fee2e2; color: #991b1b; } .v-critical { background: #7f1d1d; }
.v-no_data { background: #f3f4f6; color: #4b5563; }
.v-other { background: #ede9fe; color: #5b21b6; }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; }
figure.chart { margin: 0; background: var(--card); border: 1px solid var(--line);
  border-radius: 8px; padding: 10px 12px; }
figure.chart svg { width: 100%; height: auto; display: block; }
.figure-title { font-size: 14px; font-weight: 600; margin: 4px 0 10px 6px; }
figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; }
article.candidate { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 16px 20px; margin: 16px 0; }
article.candidate table { border: 1px solid var(--line); }
.head { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; }
.head .u { margin-left: auto; font-variant-numeric: tabular-nums; color: var(--muted); }
.ident { color: var(--muted); font-size: 13px; margin: 4px 0 0; overflow-wrap: anywhere; }
.reason { font-size: 13px; }
.confirm { margin: 8px 0 0; }
.track { position: relative; height: 10px; min-width: 140px; background: #f1f3f6;
  border-radius: 2px; }
.track::after { content: ""; position: absolute; left: 50%; top: -2px; bottom: -2px;
  border-left: 1px solid #9ca3af; }
.bar { position: absolute; top: 0; bottom: 0; }
.bar.pos { left: 50%; background: #16a34a; } .bar.neg { right: 50%; background: #dc2626; }
tfoot td { font-weight: 600; border-top: 2px solid var(--ink); border-bottom: 0; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
@media (max-width: 900px) {
  .charts { grid-template-columns: 1fr; } dl.meta { grid-template-columns: 1fr 1fr; } }
@media print { body { background: #fff; } article.candidate, figure.chart { break-inside: avoid; } }
"""


# -- formats ----------------------------------------------------------------------------------


def _e(text: str) -> str:
    return escape(text)


def _or_dash(text: str) -> str:
    return _e(text) if text else _DASH


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _fmt(value: float | None, render: Callable[[float], str]) -> str:
    if value is None:
        return _DASH
    if not math.isfinite(value):
        return _e(str(value))
    return render(value + 0.0)  # + 0.0: no "-0"


def _pct(value: float | None) -> str:
    return _fmt(value, lambda v: f"{100 * v:.1f}%")


def _dec(value: float | None, digits: int = 3) -> str:
    return _fmt(value, lambda v: f"{v:.{digits}f}")


def _sig(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:.4g}")


def _signed(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:+.4g}")


def _utility(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:+.{_UTILITY_DECIMALS}f}")


def _ms(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:.3g} ms")


def _count(value: int | None) -> str:
    return _DASH if value is None else f"{value:,}"


def _bytes(value: int | None) -> str:
    if value is None:
        return _DASH
    if abs(value) < 1024:
        text = f"{value} B"
    elif abs(value) < 1024**2:
        text = f"{value / 1024:.1f} KiB"
    elif abs(value) < 1024**3:
        text = f"{value / 1024**2:.1f} MiB"
    else:
        text = f"{value / 1024**3:.2f} GiB"
    return f'<span title="{value:,} bytes">{text}</span>'


def _digest(text: str, *, full: bool = False) -> str:
    """A digest in code type; shortened to ``sha256:`` + 12 hex unless ``full``, with
    the whole digest as the tooltip."""
    if not text:
        return _DASH
    short = text if full or len(text) <= 20 else text[:19] + "…"
    return f'<code title="{_e(text)}">{_e(short)}</code>'


def _outcome_badge(outcome: str) -> str:
    kind = outcome if outcome in (*_OUTCOMES, "champion", "failed") else "other"
    return f'<span class="badge o-{kind}">{_or_dash(outcome)}</span>'


def _verdict_badge(verdict: str) -> str:
    kind = verdict if verdict in _VERDICTS else "other"
    return f'<span class="badge v-{kind}">{_e(_VERDICTS.get(verdict, verdict) or _DASH)}</span>'


def _colour(outcome: str) -> str:
    return _COLOURS.get(outcome, _OTHER_COLOUR)


def _name(c: Candidate) -> str:
    """What a candidate is called in prose: its label, else operator, else its id."""
    return c.label or c.operator or c.package or "unnamed candidate"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _duration(started: str, finished: str) -> str | None:
    try:
        seconds = (
            datetime.fromisoformat(finished) - datetime.fromisoformat(started)
        ).total_seconds()
    except (ValueError, TypeError):  # unparseable, or naive against aware
        return None
    if seconds < 0:
        return None
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _items(values: Iterable[str], *, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    body = "".join(f"<li>{_e(v)}</li>" for v in values)
    return f"<ul{cls}>{body}</ul>" if body else ""


# -- what to compare ----------------------------------------------------------------------------


def _best(r: Round) -> Candidate | None:
    """The winner, else the candidate furthest toward release: highest outcome, then
    highest U, then record order."""
    if r.winning is not None:
        return r.winning
    if not r.candidates:
        return None

    def key(item: tuple[int, Candidate]) -> tuple[int, float, int]:
        index, c = item
        u = c.utility if c.utility is not None and math.isfinite(c.utility) else -math.inf
        return (-_RANK.get(c.outcome, -1), -u, index)

    return min(enumerate(r.candidates), key=key)[1]


def _primary(r: Round) -> tuple[str, bool, bool]:
    """The primary metric's name, whether higher is better, and whether the policy
    named it (False: the fallback)."""
    spec: Spec | None = r.policy.primary if r.policy is not None else None
    if spec is None or not spec.name:
        return _FALLBACK_PRIMARY, True, False
    return spec.name, spec.higher_is_better, True


# -- sections -------------------------------------------------------------------------------------


def _header(r: Round) -> str:
    cluster = _DASH + ' <span class="muted">(a general round, no failure cluster)</span>'
    if r.cluster is not None:
        description = f" — {_e(r.cluster.description)}" if r.cluster.description else ""
        cluster = (
            f"<strong>{_or_dash(r.cluster.name)}</strong>{description}"
            f'<div class="sub">{_digest(r.cluster.id, full=True)}</div>'
        )
    took = _duration(r.started, r.finished)
    finished = _or_dash(r.finished) + (f' <span class="muted">(took {took})</span>' if took else "")
    fields = [
        ("Round", f"<strong>{_or_dash(r.round)}</strong>"),
        ("Capability", f"<strong>{_or_dash(r.capability)}</strong>"),
        ("Seed", _DASH if r.seed is None else str(r.seed)),
        ("Champion", _digest(r.champion, full=True)),
        ("Suite", _digest(r.suite, full=True)),
        ("Failure cluster", cluster),
        ("Parents", _DASH if r.parents is None else _e(r.parents.summary())),
        ("Started", _or_dash(r.started)),
        ("Finished", finished),
        ("Candidates", f"{len(r.candidates)} scored, {len(r.failed)} failed"),
    ]
    body = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in fields)
    return (
        '<header>\n<div class="kicker">breedlab · breeding round report</div>\n'
        f"<h1>{_or_dash(r.round)} "
        f'<span class="muted">· {_or_dash(r.capability)}</span></h1>\n'
        f'<dl class="meta">{body}</dl>\n</header>'
    )


def _tally(r: Round) -> str:
    counts = [(o, sum(1 for c in r.candidates if c.outcome == o)) for o in _OUTCOMES]
    other = sum(1 for c in r.candidates if c.outcome not in _OUTCOMES)
    parts = [f"{n} {o}" for o, n in counts if n]
    if other:
        parts.append(f"{other} other")
    text = ", ".join(parts)
    if r.failed:
        text = f"{text}; {len(r.failed)} failed" if text else f"{len(r.failed)} failed"
    return text


def _decision_sentence(r: Round) -> str:
    """The decision in one sentence, as HTML (every record string escaped)."""
    winner = r.winning
    action = r.action or "shadow"
    if r.winner is not None and winner is not None:
        u = f" (U = {_utility(winner.utility)})" if _finite(winner.utility) else ""
        why = (
            "; it passed every gate on the dev split and was confirmed on the sealed split"
            if winner.outcome == "shadow"
            else ""
        )
        name = f" ({_e(winner.name)})" if winner.name else ""
        return (
            f"Winner: <strong>{_e(_name(winner))}</strong>{name} goes to "
            f"{_outcome_badge(action)}{u}{why}."
        )
    if r.winner is not None:
        return (
            f"Winner: {_digest(r.winner)} goes to {_outcome_badge(action)}; it is not among "
            "the candidates listed in this record."
        )
    if not r.candidates and not r.failed:
        return "No winner: no candidate was produced in this round, so the champion stays."
    if not r.candidates:
        runs = (
            "the only operator run" if len(r.failed) == 1 else f"all {len(r.failed)} operator runs"
        )
        return (
            f"No winner: {runs} failed before a candidate could be scored, so the champion stays."
        )
    n = len(r.candidates)
    subject = "the only scored candidate" if n == 1 else f"none of the {n} scored candidates"
    verb = "did not pass" if n == 1 else "passed"
    tail = "every gate with confirmation on the sealed split"
    if r.action in ("", "archive"):
        after = "the round's candidates are archived with their outcomes"
    else:
        after = f"the round's action is {_outcome_badge(r.action)}"
    return (
        f"No winner: {subject} {verb} {tail} ({_e(_tally(r))}), so the champion stays and {after}."
    )


def _decision(r: Round) -> str:
    winner = r.winning
    css = "d-shadow" if winner is not None and r.winner is not None else "d-none"
    parts = [f'<section class="decision {css}" id="decision">', "<h2>Decision</h2>"]
    parts.append(f'<p class="sentence">{_decision_sentence(r)}</p>')
    if winner is not None and r.winner is not None:
        parts.append(_items(winner.reasons, css="reason"))
    elif r.winner is None:
        best = _best(r)
        if best is not None:
            u = f", U = {_utility(best.utility)}" if _finite(best.utility) else ""
            parts.append(
                f'<p class="reason">Closest: <a href="#cand-{r.candidates.index(best) + 1}">'
                f"<strong>{_e(_name(best))}</strong></a> ({_outcome_badge(best.outcome)}{u}):"
                "</p>"
            )
            parts.append(_items(best.reasons, css="reason"))
    parts.append("</section>")
    return "\n".join(parts)


def _critical(card: Scorecard | None) -> str:
    if card is None or card.critical_errors is None:
        return _DASH
    items = "" if card.critical_items is None else f" / {card.critical_items}"
    css = ' class="bad"' if card.critical_errors else ""
    return f"<span{css}>{card.critical_errors}</span>{items}"


_COLUMNS = (
    ("accuracy", "Dev acc"),
    ("robust_accuracy", "Robust acc"),
    ("ece", "ECE"),
    ("brier", "Brier"),
    ("nll", "NLL"),
)


def _score_cells(card: Scorecard | None, primary: str) -> list[str]:
    dev = None if card is None else card.dev
    cells = []
    for metric, _ in _COLUMNS:
        value = None if dev is None else dev.value(metric)
        text = _pct(value) if "accuracy" in metric else _dec(value)
        css = "num primary" if metric == primary else "num"
        cells.append(f'<td class="{css}">{text}</td>')
    cells.append(f'<td class="num">{_ms(None if card is None else card.latency_p95_ms)}</td>')
    cells.append(f'<td class="num">{_bytes(None if card is None else card.size_bytes)}</td>')
    cells.append(f'<td class="num">{_count(None if card is None else card.parameters)}</td>')
    cells.append(f'<td class="num">{_critical(card)}</td>')
    return cells


def _scorecard_table(r: Round) -> str:
    primary, _, _ = _primary(r)
    head = ["<th>Model</th>", "<th>Outcome</th>", '<th class="num" title="utility">U</th>']
    for metric, label in _COLUMNS:
        if metric == primary:
            head.append(f'<th class="num primary" title="the primary metric">{label} ★</th>')
        else:
            head.append(f'<th class="num">{label}</th>')
    head += [f'<th class="num">{h}</th>' for h in ("Latency p95", "Size", "Params", "Critical")]
    rows = [
        '<tr class="champion"><td><strong>champion</strong>'
        f'<div class="sub">{_digest(r.champion)}</div></td>'
        f'<td>{_outcome_badge("champion")}</td><td class="num">{_DASH}</td>'
        + "".join(_score_cells(r.champion_scorecard, primary))
        + "</tr>"
    ]
    for i, c in enumerate(r.candidates, start=1):
        css = ' class="winner"' if r.winner is not None and c.package == r.winner else ""
        name = f"{_e(c.name)} · " if c.name else ""
        rows.append(
            f'<tr{css}><td><a href="#cand-{i}"><strong>{_e(_name(c))}</strong></a>'
            f'<div class="sub">{name}{_digest(c.package)}</div></td>'
            f"<td>{_outcome_badge(c.outcome)}</td>"
            f'<td class="num">{_utility(c.utility)}</td>'
            + "".join(_score_cells(c.scorecard, primary))
            + "</tr>"
        )
    note = (
        '<p class="muted">Dev split aggregates; ★ marks the primary metric. Robust accuracy: '
        "right on the clean input and every perturbation. Latency at batch 1.</p>"
    )
    return (
        '<section id="scorecards"><h2>Scorecards</h2><div class="table-wrap"><table>'
        f"<thead><tr>{''.join(head)}</tr></thead><tbody>"
        + "\n".join(rows)
        + f"</tbody></table></div>{note}</section>"
    )


def _quality_cost(
    r: Round,
    *,
    cost: Callable[[Scorecard], float | None],
    cost_name: str,
    cost_label: str,
    title: str,
    render_cost: Callable[[float], str],
) -> str:
    primary, higher, named = _primary(r)
    models: list[tuple[str, str, Scorecard | None, bool, bool]] = [
        ("champion", "champion", r.champion_scorecard, True, False)
    ]
    models += [
        (_name(c), c.outcome, c.scorecard, False, r.winner is not None and c.package == r.winner)
        for c in r.candidates
    ]
    points, skipped = [], []
    for label, outcome, card, champion, winner in models:
        x = None if card is None else cost(card)
        q = None if card is None or card.dev is None else card.dev.value(primary)
        if not (_finite(x) and _finite(q)):
            missing = [n for n, v in ((cost_name, x), (f"dev {primary}", q)) if not _finite(v)]
            skipped.append(f"{label} (no {' or '.join(missing)})")
            continue
        assert x is not None and q is not None
        detail = f"{label}: dev {primary} {q:.4f}, {cost_name} {render_cost(x)}"
        detail += "" if champion else f", outcome {outcome or _DASH}"
        points.append(
            svg.Point(
                label=label,
                cost=x,
                quality=q,
                colour=_colour(outcome),
                champion=champion,
                winner=winner,
                detail=detail,
            )
        )
    quality_label = f"dev {primary}" + ("" if higher else " (lower is better)")
    chart = svg.quality_cost_plot(
        points,
        title=title,
        cost_label=cost_label,
        quality_label=quality_label,
        higher_is_better=higher,
    )
    caption = [
        f"Quality is the suite's primary metric, {_e(primary)}, on the dev split"
        + ("" if named else " (the policy names no primary metric; a default is shown)")
        + ". Colours follow the outcome badges; the amber steps join the Pareto front."
    ]
    if skipped:
        caption.append("Not plotted: " + _e("; ".join(skipped)) + ".")
    return f'<figure class="chart">{chart}<figcaption>{" ".join(caption)}</figcaption></figure>'


def _reliability(r: Round) -> str:
    best = _best(r)
    series, notes = [], []
    models: list[tuple[str, str, Scorecard | None, str, bool]] = [
        ("champion", "", r.champion_scorecard, _COLOURS["champion"], True)
    ]
    if best is not None:
        role = "winner" if r.winner is not None and best.package == r.winner else "best candidate"
        models.append((_name(best), role, best.scorecard, _colour(best.outcome), False))
    for label, role, card, colour, dashed in models:
        dev = None if card is None else card.dev
        bins = (
            ()
            if dev is None
            else tuple((b.confidence, b.accuracy, b.count) for b in dev.reliability)
        )
        if dev is not None and dev.ece is not None:
            notes.append(f"{label}: ECE {_dec(dev.ece)}")
        series.append(svg.Series(label=label, bins=bins, colour=colour, dashed=dashed, note=role))
    chart = svg.reliability_diagram(series, title="Reliability, dev split")
    caption = (
        "Accuracy against mean confidence in 10 equal-mass bins; points on the diagonal are "
        "perfectly calibrated, below it over-confident."
    )
    if notes:
        caption += " " + _e("; ".join(notes)) + "."
    return f'<figure class="chart">{chart}<figcaption>{caption}</figcaption></figure>'


def _robustness(r: Round) -> str:
    """Accuracy per perturbation, champion against the winner (or best candidate), and
    the sealed split's accuracies beside the dev split's."""
    best = _best(r)
    cards: list[tuple[str, Scorecard | None]] = [("champion", r.champion_scorecard)]
    if best is not None:
        cards.append((_name(best), best.scorecard))

    def split_of(card: Scorecard | None, split: str) -> Split | None:
        if card is None:
            return None
        return card.dev if split == "dev" else card.sealed

    names: list[str] = []
    for _, card in cards:
        dev = split_of(card, "dev")
        for variant, _ in () if dev is None else dev.variants:
            if variant not in names:
                names.append(variant)
    rows: list[tuple[str, str, str]] = [("dev", v, f"accuracy_{v}") for v in names]
    rows += [("dev", "worst case (robust)", "robust_accuracy")]
    rows += [("sealed", "clean", "accuracy"), ("sealed", "worst case (robust)", "robust_accuracy")]
    head = "".join(f'<th class="num">{_e(label)}</th>' for label, _ in cards)
    delta_head = '<th class="num">Δ</th>' if len(cards) > 1 else ""
    body = []
    for split, label, metric in rows:
        values = [
            None if (sp := split_of(card, split)) is None else sp.value(metric) for _, card in cards
        ]
        cells = "".join(f'<td class="num">{_pct(v)}</td>' for v in values)
        if len(values) > 1:
            first, second = values[0], values[1]
            delta = second - first if first is not None and second is not None else None
            cells += f'<td class="num">{_fmt(delta, lambda v: f"{100 * v:+.1f} pt")}</td>'
        body.append(f"<tr><td>{_e(split)}</td><td>{_e(label)}</td>{cells}</tr>")
    return (
        '<figure class="chart"><div class="figure-title">Accuracy by perturbation</div>'
        f"<table><thead><tr><th>Split</th><th>Input</th>{head}{delta_head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table><figcaption>Robust accuracy counts an item "
        "only if it is right on the clean input and under every perturbation. The sealed "
        "split played no part in choosing the winner.</figcaption></figure>"
    )


def _charts(r: Round) -> str:
    latency = _quality_cost(
        r,
        cost=lambda card: card.latency_p95_ms,
        cost_name="latency p95",
        cost_label="latency p95 (ms, batch 1)",
        title="Quality versus latency",
        render_cost=lambda v: f"{v:.3g} ms",
    )
    size = _quality_cost(
        r,
        cost=lambda card: None if card.size_bytes is None else float(card.size_bytes),
        cost_name="size",
        cost_label="package size (bytes)",
        title="Quality versus size",
        render_cost=lambda v: f"{v:,.0f} bytes",
    )
    return (
        '<section id="charts"><h2>Quality, cost and calibration</h2><div class="charts">'
        f"{latency}\n{size}\n{_reliability(r)}\n{_robustness(r)}</div></section>"
    )


def _delta(m: MetricVerdict) -> str:
    if m.kind == "aggregate":
        return _fmt(m.delta, lambda v: f"{100 * v:+.3g}%")
    return _signed(m.delta)


def _interval(m: MetricVerdict) -> str:
    if m.lower is None or m.upper is None:
        return _DASH
    return f"[{_signed(m.lower)}, {_signed(m.upper)}]"


def _margin(m: MetricVerdict) -> str:
    if m.role == "zero_tolerance":
        return "zero tolerance"
    if m.kind == "aggregate":
        return _fmt(m.margin, lambda v: f"{100 * v:.4g}% (ratio)")
    return _sig(m.margin)


def _verdict_table(d: Decision) -> str:
    rows = []
    for m in d.metrics:
        better = {"higher": "higher is better", "lower": "lower is better"}.get(m.direction, "")
        about = ", ".join(_e(x) for x in (m.role.replace("_", " "), m.group, better) if x)
        holm = "" if m.p_adjusted is None else f'<div class="sub">Holm p {_sig(m.p_adjusted)}</div>'
        rows.append(
            f"<tr><td><strong>{_or_dash(m.metric)}</strong>"
            f'<div class="sub">{about}</div></td>'
            f"<td>{_verdict_badge(m.verdict)}</td>"
            f'<td class="num">{_delta(m)}</td><td class="num">{_interval(m)}{holm}</td>'
            f'<td class="num">{_margin(m)}</td><td class="reason">{_or_dash(m.reason)}</td></tr>'
        )
    if not rows:
        return '<p class="muted">The decision records no per-metric verdicts.</p>'
    return (
        '<table><thead><tr><th>Metric</th><th>Verdict</th><th class="num">Δ</th>'
        '<th class="num">Interval</th><th class="num">Margin</th><th>Reason</th></tr></thead>'
        "<tbody>" + "\n".join(rows) + "</tbody></table>"
    )


def _utility_table(d: Decision) -> str:
    if not d.terms:
        recorded = f" U = {_utility(d.utility)}." if d.utility is not None else ""
        return f'<p class="muted">No metric has a utility term (none with data).{recorded}</p>'
    scale = max(
        (abs(t.weight) for t in d.terms if t.weight is not None and math.isfinite(t.weight)),
        default=0.0,
    )
    rows = []
    for t in d.terms:
        bar = ""
        if scale > 0 and _finite(t.value):
            assert t.value is not None
            width = min(50.0, 50.0 * abs(t.value) / scale)
            side = "pos" if t.value >= 0 else "neg"
            bar = f'<span class="bar {side}" style="width:{width:.1f}%"></span>'
        rows.append(
            f"<tr><td>{_or_dash(t.metric)}</td><td>{_or_dash(t.group)}</td>"
            f'<td class="num">{_dec(t.weight, 4)}</td><td class="num">{_signed(t.normalised)}</td>'
            f'<td><div class="track">{bar}</div></td>'
            f'<td class="num term">{_utility(t.value)}</td></tr>'
        )
    values = [t.value for t in d.terms]
    total = math.fsum(v for v in values if v is not None) if None not in values else None
    check = ""
    if (
        total is not None
        and d.utility is not None
        and math.isfinite(total)
        and abs(total - d.utility) > 1e-12 * max(1.0, abs(d.utility))
    ):
        check = (
            f'<tr><td colspan="6" class="warn">The terms sum to {_utility(total)}, but the '
            f"record says U = {_utility(d.utility)}.</td></tr>"
        )
    return (
        "<table><thead><tr><th>Metric</th><th>Group</th>"
        '<th class="num">Weight w<sub>g</sub>/|g|</th>'
        '<th class="num">clip(sign·Δ/δ, −1, 1)</th><th></th><th class="num">Term</th></tr>'
        "</thead><tbody>" + "\n".join(rows) + "</tbody><tfoot>"
        f'<tr><td colspan="5">Σ of the {_plural(len(d.terms), "term")} = U</td>'
        f'<td class="num utility-sum">{_utility(d.utility if d.utility is not None else total)}'
        f"</td></tr>{check}</tfoot></table>"
    )


def _candidate(index: int, c: Candidate) -> str:
    d = c.decision
    u = f'<span class="u">U = {_utility(c.utility)}</span>' if c.utility is not None else ""
    parents = ", ".join(_digest(p) for p in c.parents) or _DASH
    params = " ".join(f"<code>{_e(k)}={_e(v)}</code>" for k, v in c.params) or _DASH
    name = f"<strong>{_e(c.name)}</strong> · " if c.name else ""
    parts = [
        f'<article class="candidate" id="cand-{index}">',
        f'<div class="head"><h3>{_e(_name(c))}</h3>{_outcome_badge(c.outcome)}{u}</div>',
        f'<p class="ident">{name}package {_digest(c.package, full=True)} · operator '
        f"{_or_dash(c.operator)} · parents {parents}</p>",
        f'<p class="ident">params {params}</p>',
        f"<h4>Why {_or_dash(c.outcome)}</h4>",
        _items(c.reasons, css="reason") or '<p class="muted">No reasons recorded.</p>',
    ]
    if d is None:
        parts.append('<p class="muted">No decision record for this candidate.</p></article>')
        return "\n".join(parts)
    if d.confirmation is not None:
        state = {True: "confirmed", False: "not confirmed", None: "unknown"}[
            d.confirmation.confirmed
        ]
        parts.append(
            f'<p class="confirm reason"><strong>Sealed split: {state}.</strong> '
            f"{_e(d.confirmation.reason)}</p>"
        )
    if d.vetoes:
        parts.append("<h4>Vetoes</h4>")
        parts.append(
            '<ul class="reason">'
            + "".join(f"<li><strong>{_e(k)}</strong>: {_e(v)}</li>" for k, v in d.vetoes)
            + "</ul>"
        )
    parts.append("<h4>Per-metric verdicts (dev split, candidate − champion)</h4>")
    parts.append(_verdict_table(d))
    if d.mde is not None:
        parts.append(
            f'<p class="sub">Minimum detectable effect of the primary metric at this n: '
            f"{_sig(d.mde)}.</p>"
        )
    parts.append("<h4>Utility decomposition</h4>")
    parts.append(_utility_table(d))
    parts.append("</article>")
    return "\n".join(parts)


def _candidates(r: Round) -> str:
    if not r.candidates:
        return (
            '<section id="candidates"><h2>Candidates</h2>'
            '<p class="muted">No candidate was scored in this round.</p></section>'
        )
    body = "\n".join(_candidate(i, c) for i, c in enumerate(r.candidates, start=1))
    return f'<section id="candidates"><h2>Candidates</h2>{body}</section>'


def _failed(r: Round) -> str:
    if not r.failed:
        return (
            '<section id="failed"><h2>Failed runs</h2>'
            '<p class="muted">No operator run failed.</p></section>'
        )
    rows = "\n".join(
        f"<tr><td>{_or_dash(f.operator)}</td><td><strong>{_or_dash(f.label)}</strong></td>"
        f'<td><span class="badge o-failed">{_or_dash(f.failure)}</span></td>'
        f'<td class="reason">{_or_dash(f.reason)}</td></tr>'
        for f in r.failed
    )
    return (
        '<section id="failed"><h2>Failed runs</h2><div class="table-wrap"><table><thead><tr>'
        "<th>Operator</th><th>Label</th><th>Failure</th><th>Reason</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div></section>"
    )


def _policy(r: Round) -> str:
    p = r.policy
    if p is None:
        return (
            '<section id="policy"><h2>Policy</h2>'
            '<p class="muted">The record holds no policy.</p></section>'
        )
    rows = "\n".join(
        f"<tr><td><strong>{_or_dash(m.name)}</strong></td><td>{_or_dash(m.group)}</td>"
        f"<td>{_or_dash(m.role.replace('_', ' '))}</td><td>{_or_dash(m.kind)}</td>"
        f"<td>{_or_dash(m.direction)}</td>"
        f'<td class="num">{_sig(m.margin)}{" (ratio)" if m.kind == "aggregate" else ""}</td>'
        f'<td class="num">{_sig(m.scale)}</td></tr>'
        for m in p.metrics
    )
    weights = ", ".join(f"{_e(g)} {_sig(w)}" for g, w in p.weights) or _DASH
    settings = [
        ("α (one-sided)", _sig(p.alpha)),
        ("ε to promote", _sig(p.epsilon_up)),
        ("ε to demote", _sig(p.epsilon_down)),
        ("σ<sub>AA</sub> (no-op noise)", _sig(p.sigma_aa)),
        ("utility minimum", _sig(p.utility_min)),
        ("power", _sig(p.power)),
        ("bootstrap samples", _count(p.bootstrap_samples)),
        ("bootstrap seed", _DASH if p.seed is None else str(p.seed)),
        ("minimum pairs", _count(p.min_pairs)),
        ("group weights", weights),
    ]
    body = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in settings)
    return (
        '<section id="policy"><h2>Policy</h2>'
        f'<dl class="meta">{body}</dl><h4>Metrics</h4><div class="table-wrap"><table><thead><tr>'
        "<th>Metric</th><th>Group</th><th>Role</th><th>Kind</th><th>Better</th>"
        '<th class="num">Margin</th><th class="num">Utility scale δ</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div></section>"
    )


def render_round_report(record: Mapping[str, Any]) -> str:
    """The HTML report of one breeding round: a complete, self-contained document.

    Args:
        record: a ``breedlab.round/v1`` record as stored (floats as decimal strings).
            Missing or malformed fields render as a dash; the record is not verified
            against any digest or signature.

    Returns:
        One HTML document; the same record always gives the same string.

    Raises:
        InvalidRequest: ``record`` is not a round record (see
            :func:`breedlab.report.record.read_round`).
    """
    r = read_round(record)
    title = f"breedlab {r.round or 'round'} · {r.capability or 'report'}"
    body = [
        _header(r),
        _decision(r),
        _scorecard_table(r),
        _charts(r),
        _candidates(r),
        _failed(r),
        _policy(r),
        "<footer>Rendered by breedlab from the round record alone; every number above is "
        "read from it. This file is self-contained: it loads no fonts, scripts or images."
        "</footer>",
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        '<div class="page">\n' + "\n".join(body) + "\n</div>\n</body>\n</html>\n"
    )
