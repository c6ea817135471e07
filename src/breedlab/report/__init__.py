"""breedlab.report: the self-contained HTML report of one breeding round.

A pure function of the stored round record (``breedlab.round/v1``, written by the
breeding round in ``breedlab.lab.breeding``): no I/O, no clock, no randomness, standard
library only. The output loads nothing from anywhere: inline CSS, inline SVG charts,
no script. Every string from the record is escaped.

The map::

    record.py   read_round(): the record's JSON into frozen values; a missing field
                becomes None and renders as a dash; only a non-round record is refused
    svg.py      reliability_diagram(), quality_cost_plot(), pareto_front(): charts
                as standalone, well-formed SVG strings
    html.py     render_round_report(): the document: header, decision sentence,
                scorecard table, charts, per-candidate verdicts and utility terms,
                failed runs, policy

Usage::

    html = render_round_report(result.record)
    path.write_text(html, encoding="utf-8")
"""

from __future__ import annotations

from breedlab.report.html import render_round_report
from breedlab.report.record import ROUND_SCHEMA, Round, read_round
from breedlab.report.svg import pareto_front

__all__ = ["ROUND_SCHEMA", "Round", "pareto_front", "read_round", "render_round_report"]
