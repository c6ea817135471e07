"""Release controller: shadow, canary, champion, rollback (seed stage 3; DESIGN §11).

This package holds the pure cores: values and small state machines of values, with no
I/O, no clock and no model code. Times and randomness come in as arguments. The map::

    cohorts        sticky canary cohorts: bucket hash, monotone Ramp, per-release salt,
                   sample-ratio-mismatch check
    sequential     anytime-valid guardrails: Wald SPRT on error rates, mSPRT on
                   canary-minus-champion differences; minimum samples, ceilings, no-data rule
    shadow_stats   a shadow run's paired records in numbers: agreement (Wilson), flip
                   matrix, latency ratios (seeded bootstrap), error rates, drops
    recovery       the moments of an abort or rollback and the recovery figures
    oscillation    DESIGN §10 controls: dead band, minimum dwell, deny-list, flip-flop freeze
    promotion      every unmet condition of a promotion, from facts: the replayed gates
                   (signed, shadow, canary, recommended, approvals by risk tier) and the
                   time rules (dwell, flip-flop, dead band for automation)
    state          the release state folded from a capability's release events
    canary         one ramp stage's four monitors over paired canary/champion observations,
                   and its exposure cap
    gates          the shadow gate to canary

The shells around them are the only parts of the release controller allowed I/O: the
controller that reads the ledger and the logs and writes alias moves and events
(``breedlab.lab.release``), and the serving app (``breedlab.http``).
"""

from __future__ import annotations

from breedlab.release.canary import (
    CanaryObservation,
    CanaryPolicy,
    CanaryStage,
    ExposureCap,
    ramp_from,
)
from breedlab.release.cohorts import (
    DEFAULT_RAMP,
    SALT_BYTES,
    Cohort,
    Ramp,
    SrmResult,
    SrmVerdict,
    bucket,
    in_canary,
    new_salt,
    sample_ratio_check,
)
from breedlab.release.gates import GateResult, ShadowGate
from breedlab.release.oscillation import (
    BandVerdict,
    ChampionChange,
    ChangeKind,
    DeadBand,
    DenyList,
    DwellStatus,
    FlipFlopRule,
    FlipFlopStatus,
    MinimumDwell,
    flip_flop,
)
from breedlab.release.promotion import (
    MAX_BAKING,
    Approval,
    Problem,
    PromotionFacts,
    PromotionPolicy,
    PromotionTiming,
    Unmet,
    gate_problems,
    promotion_problems,
)
from breedlab.release.recovery import Recovery
from breedlab.release.sequential import (
    Guardrail,
    GuardrailStatus,
    MsprtConfig,
    MsprtGuardrail,
    NoDataRule,
    Pair,
    SprtConfig,
    SprtGuardrail,
    Trigger,
    Verdict,
    WorseWhen,
    combined_verdict,
)
from breedlab.release.shadow_stats import (
    DEFAULT_RESAMPLES,
    Flip,
    FlipMatrix,
    LatencyRatio,
    Proportion,
    ShadowPair,
    ShadowReport,
    summarise_shadow,
    wilson_interval,
)

__all__ = [
    "DEFAULT_RAMP",
    "DEFAULT_RESAMPLES",
    "MAX_BAKING",
    "SALT_BYTES",
    "Approval",
    "BandVerdict",
    "CanaryObservation",
    "CanaryPolicy",
    "CanaryStage",
    "ChampionChange",
    "ChangeKind",
    "Cohort",
    "DeadBand",
    "DenyList",
    "DwellStatus",
    "ExposureCap",
    "Flip",
    "FlipFlopRule",
    "FlipFlopStatus",
    "FlipMatrix",
    "GateResult",
    "Guardrail",
    "GuardrailStatus",
    "LatencyRatio",
    "MinimumDwell",
    "MsprtConfig",
    "MsprtGuardrail",
    "NoDataRule",
    "Pair",
    "Problem",
    "PromotionFacts",
    "PromotionPolicy",
    "PromotionTiming",
    "Proportion",
    "Ramp",
    "Recovery",
    "ShadowGate",
    "ShadowPair",
    "ShadowReport",
    "SprtConfig",
    "SprtGuardrail",
    "SrmResult",
    "SrmVerdict",
    "Trigger",
    "Unmet",
    "Verdict",
    "WorseWhen",
    "bucket",
    "combined_verdict",
    "flip_flop",
    "gate_problems",
    "in_canary",
    "new_salt",
    "promotion_problems",
    "ramp_from",
    "sample_ratio_check",
    "summarise_shadow",
    "wilson_interval",
]
