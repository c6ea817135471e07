"""The release state of one capability, folded from its ledger events (pure).

Owns :class:`ReleaseState`, a value, and :meth:`ReleaseState.step`, which applies one
event and returns the next value. The release controller folds a capability's
``release.*`` events (and every ``candidate.archived`` retirement) to decide;
:mod:`breedlab.authority` folds the same events while it replays the ledger, so a
champion move is judged against the state *at its seq* by the same rules. Leaves reading
the events to the ledger and acting on the state to the controllers.

Events it reads, each with subject = capability (``candidate.archived``: any subject):
``release.shadow_started`` / ``release.shadow_stopped``, ``release.canary_started`` /
``release.canary_stage`` / ``release.canary_passed`` / ``release.canary_aborted`` /
``release.canary_stopped``, ``release.promoted``, ``release.rolled_back``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from breedlab.clock import parse_time
from breedlab.digest import Digest
from breedlab.errors import IntegrityError
from breedlab.ledger import Event, EventKind
from breedlab.release.canary import ExposureCap
from breedlab.release.cohorts import DEFAULT_RAMP, Cohort, Ramp
from breedlab.release.oscillation import ChampionChange, ChangeKind, DenyList

__all__ = [
    "DEFAULT_BAKING",
    "MAX_BAKING",
    "RELEASE_KINDS",
    "ReleaseState",
    "event_time",
    "fold_release",
]

RELEASE_KINDS = (
    EventKind.SHADOW_STARTED,
    EventKind.SHADOW_STOPPED,
    EventKind.CANARY_STARTED,
    EventKind.CANARY_STAGE,
    EventKind.CANARY_PASSED,
    EventKind.CANARY_ABORTED,
    EventKind.CANARY_STOPPED,
    EventKind.PROMOTED,
    EventKind.ROLLED_BACK,
)

#: How long a server keeps the old champion loaded after a promotion (notes §5.4: the
#: previous champion stays warm for a baking period; SageMaker's blue fleet, Argo's
#: scaleDownDelaySeconds). Rollback works after it too, with a cold load.
DEFAULT_BAKING = timedelta(hours=1)
#: The longest baking period a promotion may record: a longer one is refused when it is
#: written (``PromotionPolicy``) and when it is replayed (:func:`_baking`).
MAX_BAKING = timedelta(days=365)


def event_time(ev: Event) -> datetime:
    """An event's ``at`` as an aware datetime."""
    return parse_time(ev.at)


def _baking(ev: Event) -> timedelta:
    """The baking period a ``release.promoted`` event recorded (``baking_s``, whole
    seconds; absent before baking was recorded: :data:`DEFAULT_BAKING`).

    An out-of-bound or malformed value is refused, not clamped: a promotion never writes
    one (it refuses a period over :data:`MAX_BAKING`), so the event is not what a
    promotion signed, and a clamped period would be a state that no promotion chose --
    one the authority replay would then judge later moves against. Refusing names the
    event for whoever investigates (and a huge value no longer overflows ``timedelta``).

    Raises:
        IntegrityError: not a whole number of seconds from 0 to MAX_BAKING; names the seq.
    """
    value = ev.payload.get("baking_s")
    if value is None:
        return DEFAULT_BAKING
    limit = int(MAX_BAKING.total_seconds())
    seconds = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        seconds = int(value)  # ``int(str(...))`` always read a string of digits too
    if seconds is None or not 0 <= seconds <= limit:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise IntegrityError(
            f"ledger event {ev.seq} ({ev.kind} of {ev.subject}) records a baking period "
            f"of {shown} seconds; a promotion records a whole number from 0 to {limit} "
            f"({MAX_BAKING.days} days)",
            hint=f"no promotion writes this; see it with 'breedlab ledger show --after "
            f"{ev.seq - 1} --full' and restore the ledger from a copy you trust",
        )
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseState:
    """The release state of one capability, folded from its ``release.*`` events."""

    capability: str
    shadow: Digest | None = None
    shadow_seq: int | None = None
    shadow_sample: float = 1.0
    canary: Digest | None = None
    canary_seq: int | None = None
    salt: str | None = None
    ramp: tuple[float, ...] = DEFAULT_RAMP
    stage: int = 0
    exposure_cap: ExposureCap = field(default_factory=ExposureCap)
    canary_passed: bool = False
    passed: frozenset[Digest] = frozenset()  # packages whose canary passed (all stages)
    shadowed: frozenset[Digest] = frozenset()  # packages that went through shadow
    deny: DenyList = field(default_factory=DenyList)
    changes: tuple[ChampionChange, ...] = ()
    promotions: tuple[Event, ...] = ()
    last_change: ChangeKind | None = None
    baking_until: datetime | None = None  # the previous champion stays warm until then

    def baking(self, now: datetime) -> bool:
        """Whether the last promotion's baking period still runs at ``now``."""
        return self.baking_until is not None and now < self.baking_until

    @property
    def cohort(self) -> Cohort | None:
        if self.canary is None or self.salt is None or self.canary_passed:
            return None
        return Cohort(salt=self.salt, ramp=Ramp(stages=self.ramp), stage=self.stage)

    def _no_canary(self) -> ReleaseState:
        return replace(self, canary=None, canary_seq=None, salt=None, stage=0, canary_passed=False)

    def step(self, ev: Event) -> ReleaseState:
        """The state after ``ev`` (events of other kinds change nothing)."""
        p = ev.payload
        pkg = Digest.parse(str(p["package"])) if p.get("package") else None
        if ev.kind == EventKind.CANDIDATE_ARCHIVED:
            if p.get("outcome") == "retire" and pkg is not None:
                return replace(self, deny=self.deny.with_retired(pkg))
            return self
        if ev.kind == EventKind.SHADOW_STARTED and pkg is not None:
            return replace(
                self,
                shadow=pkg,
                shadow_seq=ev.seq,
                shadow_sample=float(str(p["sample"])),
                shadowed=self.shadowed | {pkg},
            )
        if ev.kind == EventKind.SHADOW_STOPPED:
            return replace(self, shadow=None, shadow_seq=None)
        if ev.kind == EventKind.CANARY_STARTED and pkg is not None:
            return replace(
                self,
                canary=pkg,
                canary_seq=ev.seq,
                salt=str(p["salt"]),
                ramp=tuple(float(str(w)) for w in p["ramp"]),
                stage=0,
                exposure_cap=ExposureCap.from_record(p.get("exposure_cap")),
                canary_passed=False,
            )
        if ev.kind == EventKind.CANARY_STAGE and self.canary_seq == p.get("canary"):
            return replace(self, stage=int(str(p["stage"])))
        if ev.kind == EventKind.CANARY_PASSED and pkg is not None:
            return replace(self, canary_passed=True, passed=self.passed | {pkg})
        if ev.kind == EventKind.CANARY_ABORTED:
            if pkg is None:
                return self._no_canary()
            # seed, stage 3: a failed canary retires that artifact
            return replace(
                self._no_canary(),
                deny=self.deny.with_retired(pkg),
                passed=self.passed - {pkg},
            )
        if ev.kind == EventKind.CANARY_STOPPED:
            return self._no_canary()
        if ev.kind == EventKind.PROMOTED and pkg is not None:
            bake = _baking(ev)
            out = replace(
                self,
                changes=(
                    *self.changes,
                    ChampionChange(at=event_time(ev), champion=pkg, kind=ChangeKind.PROMOTION),
                ),
                promotions=(*self.promotions, ev),
                last_change=ChangeKind.PROMOTION,
                baking_until=event_time(ev) + bake,
            )
            if out.canary == pkg:
                out = out._no_canary()
            if out.shadow == pkg:
                out = replace(out, shadow=None, shadow_seq=None)
            return out
        if ev.kind == EventKind.ROLLED_BACK and pkg is not None:
            return replace(
                self,
                changes=(
                    *self.changes,
                    ChampionChange(at=event_time(ev), champion=pkg, kind=ChangeKind.ROLLBACK),
                ),
                last_change=ChangeKind.ROLLBACK,
                baking_until=None,  # the previous champion serves again: nothing to bake
            )
        return self


def fold_release(capability: str, events: Iterable[Event]) -> ReleaseState:
    """Fold ``events`` (in chain order) into the capability's release state."""
    state = ReleaseState(capability=capability)
    for ev in events:
        state = state.step(ev)
    return state
