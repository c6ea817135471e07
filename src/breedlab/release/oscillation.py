"""Oscillation controls: the rules that keep automation from flapping between champions.

Owns the pure checks of DESIGN §10 (notes §6): the asymmetric dead band, the minimum
dwell of a new champion, the deny-list of retired ids, the flip-flop detector that
freezes automation until a human approves. Their conjunction for one promotion is
:mod:`breedlab.release.promotion`. Leaves to others: the intervals fed to the dead band
(the viability controller), reading champion history, retirements and approvals (the
ledger), and acting on a verdict (the release controller). Non-inferiority against a fixed reference
model is a gate of the viability controller, not a rule here.

Every check fails closed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from itertools import pairwise

from breedlab.clock import format_time
from breedlab.digest import Digest
from breedlab.errors import InvalidRequest, PolicyError

__all__ = [
    "BandVerdict",
    "ChampionChange",
    "ChangeKind",
    "DeadBand",
    "DenyList",
    "DwellStatus",
    "FlipFlopRule",
    "FlipFlopStatus",
    "MinimumDwell",
    "flip_flop",
]


def _check_aware(name: str, moment: datetime) -> None:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise InvalidRequest(f"{name} must be a timezone-aware datetime (got {moment!r})")


# ------------------------------------------------------------------ dead band


class BandVerdict(Enum):
    """What the dead band allows."""

    PROMOTE = "promote"
    HOLD = "hold"
    DEMOTE = "demote"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadBand:
    """Asymmetric hysteresis on the primary metric's difference (notes §6, rule 1).

    The difference is the subject's advantage over the incumbent (challenger minus
    champion; or incumbent minus reference when deciding a demotion), higher is better.

    Attributes:
        eps_up: promote only when the lower bound exceeds ``+eps_up``.
        eps_down: demote only when the upper bound is below ``-eps_down``.
        sigma_aa: the A/A noise floor if known; both margins must then be ``>= 2 sigma_aa``.
    """

    eps_up: float
    eps_down: float
    sigma_aa: float | None = None

    def __post_init__(self) -> None:
        for name, eps in (("eps_up", self.eps_up), ("eps_down", self.eps_down)):
            if not (math.isfinite(eps) and eps >= 0):
                raise InvalidRequest(f"{name} must be a finite margin >= 0 (got {eps})")
        if self.sigma_aa is not None:
            if not (math.isfinite(self.sigma_aa) and self.sigma_aa >= 0):
                raise InvalidRequest(f"sigma_aa must be >= 0 (got {self.sigma_aa})")
            # DESIGN §10: eps >= 2 sigma_AA; a smaller margin is inside the noise.
            floor = 2.0 * self.sigma_aa
            if self.eps_up < floor or self.eps_down < floor:
                raise InvalidRequest(
                    f"margins must be >= 2 sigma_AA = {floor:g} "
                    f"(got eps_up {self.eps_up:g}, eps_down {self.eps_down:g})"
                )

    def decide(self, low: float, high: float) -> BandVerdict:
        """PROMOTE if ``low > eps_up``, DEMOTE if ``high < -eps_down``, else HOLD.

        Raises:
            InvalidRequest: ``low > high`` or a NaN bound.
        """
        if not low <= high:
            raise InvalidRequest(f"need low <= high (got {low}, {high})")
        if low > self.eps_up:
            return BandVerdict.PROMOTE
        if high < -self.eps_down:
            return BandVerdict.DEMOTE
        return BandVerdict.HOLD


# ---------------------------------------------------------------------- dwell


@dataclass(frozen=True, slots=True, kw_only=True)
class DwellStatus:
    """Whether a champion has served long enough to be challenged."""

    satisfied: bool
    remaining_time: timedelta
    remaining_requests: int
    explanation: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MinimumDwell:
    """A new champion serves ``min_time`` and ``min_requests`` before any challenger is
    evaluated against it (DESIGN §10; notes §6, rule 2). Both must hold."""

    min_time: timedelta
    min_requests: int

    def __post_init__(self) -> None:
        if self.min_time < timedelta(0):
            raise InvalidRequest(f"min_time must be >= 0 (got {self.min_time})")
        if not (isinstance(self.min_requests, int) and self.min_requests >= 0):
            raise InvalidRequest(f"min_requests must be >= 0 (got {self.min_requests!r})")

    def check(self, *, champion_since: datetime, now: datetime, requests: int) -> DwellStatus:
        """The dwell of a champion in place since ``champion_since`` that served ``requests``.

        Raises:
            InvalidRequest: naive datetimes, ``now`` before ``champion_since``, or a
                negative request count.
        """
        _check_aware("champion_since", champion_since)
        _check_aware("now", now)
        if now < champion_since:
            raise InvalidRequest("now is before the champion took over")
        if requests < 0:
            raise InvalidRequest(f"requests must be >= 0 (got {requests})")
        remaining_time = max(timedelta(0), self.min_time - (now - champion_since))
        remaining_requests = max(0, self.min_requests - requests)
        satisfied = remaining_time == timedelta(0) and remaining_requests == 0
        if satisfied:
            explanation = (
                f"dwell met: champion served {now - champion_since} and {requests} requests "
                f"(minimum {self.min_time} and {self.min_requests})"
            )
        else:
            explanation = (
                f"dwell not met: champion needs {remaining_time} more and "
                f"{remaining_requests} more requests (minimum {self.min_time} and "
                f"{self.min_requests})"
            )
        return DwellStatus(
            satisfied=satisfied,
            remaining_time=remaining_time,
            remaining_requests=remaining_requests,
            explanation=explanation,
        )


# ------------------------------------------------------------------ deny-list


@dataclass(frozen=True, slots=True, kw_only=True)
class DenyList:
    """Package ids retired by a failed canary or a retire decision (notes §6, rule 4).

    A retired artifact never comes back: a retry needs a new artifact, hence a new id.
    Ids are :class:`~breedlab.digest.Digest` values, so one artifact has one spelling.
    """

    retired: frozenset[Digest] = frozenset()

    @classmethod
    def of(cls, ids: Iterable[Digest]) -> DenyList:
        """A deny-list holding ``ids``."""
        return cls(retired=frozenset(ids))

    def with_retired(self, package: Digest) -> DenyList:
        """This deny-list plus ``package``."""
        return DenyList(retired=self.retired | {package})

    def __contains__(self, package: object) -> bool:
        return package in self.retired

    def check(self, package: Digest) -> None:
        """Refuse a retired package.

        Raises:
            PolicyError: ``package`` is on the deny-list.
        """
        if package in self.retired:
            raise PolicyError(
                f"{package.short} was retired; a retry needs a new artifact (a new package id)"
            )


# ------------------------------------------------------------------ flip-flop


class ChangeKind(Enum):
    """How the champion alias moved."""

    PROMOTION = "promotion"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChampionChange:
    """The champion alias moved to ``champion`` at ``at``."""

    at: datetime
    champion: Digest
    kind: ChangeKind

    def __post_init__(self) -> None:
        _check_aware("at", self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class FlipFlopRule:
    """Freeze automation when the champion changes more than ``max_changes`` times within
    any ``window``, or when a promotion brings back an earlier champion (A→B→A)."""

    max_changes: int
    window: timedelta

    def __post_init__(self) -> None:
        if not (isinstance(self.max_changes, int) and self.max_changes >= 1):
            raise InvalidRequest(f"max_changes must be >= 1 (got {self.max_changes!r})")
        if self.window <= timedelta(0):
            raise InvalidRequest(f"window must be positive (got {self.window})")


@dataclass(frozen=True, slots=True, kw_only=True)
class FlipFlopStatus:
    """Whether automation is frozen, since when, and why."""

    frozen: bool
    since: datetime | None
    reasons: tuple[str, ...]


def flip_flop(
    history: Sequence[ChampionChange],
    *,
    rule: FlipFlopRule,
    approved_at: datetime | None = None,
) -> FlipFlopStatus:
    """Detect flip-flops in the champion history (DESIGN §10; notes §6, rule 7).

    A trigger latches: automation stays frozen until a human approval is recorded after
    it (``approved_at``, the latest such approval). Changes at or before the approval
    are history: they no longer count towards ``max_changes``, but a later promotion
    back to any earlier champion still triggers. A rollback is counted as a change but
    is not itself a return: restoring the previous champion is the safety mechanism.

    Raises:
        InvalidRequest: the history is out of order, or a change does not change the
            champion.
    """
    if approved_at is not None:
        _check_aware("approved_at", approved_at)
    for before, after in pairwise(history):
        if after.at < before.at:
            raise InvalidRequest("champion history must be in time order")
        if after.champion == before.champion:
            raise InvalidRequest(f"a change must change the champion ({after.champion.short})")
    fresh = [i for i, c in enumerate(history) if approved_at is None or c.at > approved_at]
    reasons: list[str] = []
    since: datetime | None = None
    start = 0  # sliding window over the fresh changes
    for pos, i in enumerate(fresh):
        change = history[i]
        while history[fresh[start]].at <= change.at - rule.window:
            start += 1
        in_window = pos - start + 1
        triggered = False
        if in_window > rule.max_changes:
            triggered = True
            reasons.append(
                f"{in_window} champion changes within {rule.window} "
                f"(limit {rule.max_changes}), the last at {format_time(change.at)}"
            )
        earlier = {c.champion for c in history[:i]}
        if change.kind is ChangeKind.PROMOTION and change.champion in earlier:
            triggered = True
            reasons.append(
                f"{change.champion.short} was promoted back at {format_time(change.at)} "
                "after it had been champion before (A→B→A)"
            )
        if triggered and since is None:
            since = change.at
    if since is None:
        return FlipFlopStatus(frozen=False, since=None, reasons=())
    reasons.append("automation is frozen until a human approval is recorded")
    return FlipFlopStatus(frozen=True, since=since, reasons=tuple(reasons))
