"""breedlab.viability: the pure core of the viability controller (DESIGN §10).

Recommendations, not authority: candidates are compared with the champion on the same
items, and with the no-op (keep the champion) through the A/A noise floor σ_AA. Values
in, values out: no I/O, no database, no torch. The controller (read scorecards, decide,
write a ``decision.made`` event) lives elsewhere and stores ``Decision.to_record()``.

The map::

    policy.py     MetricSpec, Policy, GroupWeights; Direction, Group, Role, MetricKind
                  what to judge by: margins, α, ε = max(ε_min, 2·σ_AA), seed, weights
    evidence.py   PairedBinary, PairedContinuous, AggregateValue, Evidence, Veto
                  what to judge: per-item pairs, aggregates, vetoes
    stats.py      exact McNemar, score and Clopper–Pearson/Wilson bounds, paired
                  bootstrap, Holm, MDE, noise floor: numbers in, numbers out
    gates.py      judge(): one metric → Verdict with Δ, bounds, margin, inputs, reason
    utility.py    decompose(): U = Σ_g w_g · mean_m clip(sign·Δ/δ, −1, 1) as exact terms,
                  and per-group scores
    decision.py   assess() (Holm across candidates) → contender() → confirm() on the
                  sealed split → decide(): retire / shadow / archive / no-op
    demotion.py   demotion(): the ε_down half of the dead band
    round.py      decide_round(): a round's evaluations (champion A/A runs, candidates,
                  budget, integrity problems) → policy, σ_AA, vetoes, decisions, winner
    record.py     floats as round-tripping strings for canonical JSON records

Usage (``decide_round`` does this for a whole round)::

    assessments = assess(dev_evidences, policy)
    best = contender(assessments, policy)
    confirmation = confirm(sealed_evidence_for(best), policy) if best else None
    for decision in decide(assessments, policy, confirmation=confirmation):
        ledger.append(kind="decision.made", payload=decision.to_record())
"""

from __future__ import annotations

from breedlab.viability.decision import (
    DECISION_SCHEMA,
    Assessment,
    Confirmation,
    Decision,
    HolmFamily,
    Outcome,
    assess,
    confirm,
    contender,
    decide,
)
from breedlab.viability.demotion import Demotion, demotion
from breedlab.viability.evidence import (
    AggregateValue,
    Evidence,
    MetricData,
    MetricEvidence,
    PairedBinary,
    PairedContinuous,
    Veto,
    VetoKind,
)
from breedlab.viability.gates import (
    AggregateInputs,
    BinaryInputs,
    ContinuousInputs,
    MetricResult,
    Verdict,
    ZeroToleranceInputs,
    judge,
    settle_primary,
)
from breedlab.viability.policy import (
    Direction,
    Group,
    GroupWeights,
    MetricKind,
    MetricSpec,
    Policy,
    Role,
)
from breedlab.viability.round import (
    Action,
    Entrant,
    RoundDecision,
    RoundFacts,
    Scored,
    Unscored,
    Usage,
    aa_noise_floor,
    budget_vetoes,
    decide_round,
    paired_evidence,
    policy_from_suite,
)
from breedlab.viability.stats import noise_floor
from breedlab.viability.utility import Decomposition, GroupScore, UtilityTerm, decompose

__all__ = [
    "DECISION_SCHEMA",
    "Action",
    "AggregateInputs",
    "AggregateValue",
    "Assessment",
    "BinaryInputs",
    "Confirmation",
    "ContinuousInputs",
    "Decision",
    "Decomposition",
    "Demotion",
    "Direction",
    "Entrant",
    "Evidence",
    "Group",
    "GroupScore",
    "GroupWeights",
    "HolmFamily",
    "MetricData",
    "MetricEvidence",
    "MetricKind",
    "MetricResult",
    "MetricSpec",
    "Outcome",
    "PairedBinary",
    "PairedContinuous",
    "Policy",
    "Role",
    "RoundDecision",
    "RoundFacts",
    "Scored",
    "Unscored",
    "Usage",
    "UtilityTerm",
    "Verdict",
    "Veto",
    "VetoKind",
    "ZeroToleranceInputs",
    "aa_noise_floor",
    "assess",
    "budget_vetoes",
    "confirm",
    "contender",
    "decide",
    "decide_round",
    "decompose",
    "demotion",
    "judge",
    "noise_floor",
    "paired_evidence",
    "policy_from_suite",
    "settle_primary",
]
