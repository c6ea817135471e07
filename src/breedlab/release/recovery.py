"""Measured recovery: the timestamps of an abort or rollback and the figures derived from them.

Owns the recovery value and its record (DESIGN §11; notes §5.5). Leaves to others:
reading the clock at each moment and counting the canary's requests and units (the
release controller), deciding to abort (:mod:`breedlab.release.sequential`), and storing
the record (the ledger).

Seed, stage 3: "rollback recovery time is measured". The moments::

    t_onset     the fault began: injected, or the first observation in the aborting
                monitor's evidence window
    t_detect    the abort decision
    t_switch    routing reached 100% champion
    t_verified  post-rollback verification passed

and the figures: detection latency ``t_detect - t_onset`` (seconds and canary
requests), time to mitigate ``t_switch - t_detect``, time to recover (MTTR)
``t_verified - t_onset``, and exposure: the canary's requests and units after
``t_onset``, over ``t_switch - t_onset``. For a manual rollback, ``t_onset`` and
``t_detect`` are both the moment it was asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from breedlab.canonical import JsonValue
from breedlab.clock import format_time, parse_time
from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.release._decimal import seconds_text

__all__ = ["Recovery"]

_MOMENTS = ("t_onset", "t_detect", "t_switch", "t_verified")


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovery:
    """The four moments of an abort, the canary's traffic between them, and the figures.

    Attributes:
        t_onset, t_detect, t_switch, t_verified: timezone-aware, in this order.
        detection_requests: canary requests served from ``t_onset`` to ``t_detect``.
        exposed_requests: canary requests served from ``t_onset`` to ``t_switch``.
        exposed_units: distinct units among ``exposed_requests``.
    """

    t_onset: datetime
    t_detect: datetime
    t_switch: datetime
    t_verified: datetime
    detection_requests: int
    exposed_requests: int
    exposed_units: int

    def __post_init__(self) -> None:
        moments = [getattr(self, name) for name in _MOMENTS]
        for name, moment in zip(_MOMENTS, moments, strict=True):
            if not isinstance(moment, datetime) or moment.utcoffset() is None:
                raise InvalidRequest(f"{name} must be a timezone-aware datetime (got {moment!r})")
        for i in range(len(_MOMENTS) - 1):
            if moments[i + 1] < moments[i]:
                raise InvalidRequest(
                    f"{_MOMENTS[i + 1]} ({format_time(moments[i + 1])}) is before "
                    f"{_MOMENTS[i]} ({format_time(moments[i])})"
                )
        counts = (self.detection_requests, self.exposed_requests, self.exposed_units)
        if any(not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in counts):
            raise InvalidRequest(f"request and unit counts are non-negative integers ({counts})")
        if self.detection_requests > self.exposed_requests:
            raise InvalidRequest("requests before detection cannot exceed requests exposed")
        if self.exposed_units > self.exposed_requests or (
            self.exposed_requests > 0 and self.exposed_units == 0
        ):
            raise InvalidRequest("exposed units must be between 1 and the exposed requests")

    @property
    def detection_latency(self) -> timedelta:
        """``t_detect - t_onset``."""
        return self.t_detect - self.t_onset

    @property
    def time_to_mitigate(self) -> timedelta:
        """``t_switch - t_detect``."""
        return self.t_switch - self.t_detect

    @property
    def time_to_recover(self) -> timedelta:
        """``t_verified - t_onset`` (MTTR)."""
        return self.t_verified - self.t_onset

    @property
    def exposure(self) -> timedelta:
        """``t_switch - t_onset``: how long the challenger served after the fault began."""
        return self.t_switch - self.t_onset

    def to_record(self) -> dict[str, JsonValue]:
        """Canonical-JSON-ready values: times as ISO 8601 UTC, seconds as decimal strings."""
        return {
            "t_onset": format_time(self.t_onset),
            "t_detect": format_time(self.t_detect),
            "t_switch": format_time(self.t_switch),
            "t_verified": format_time(self.t_verified),
            "detection_latency_s": seconds_text(self.detection_latency),
            "detection_latency_requests": self.detection_requests,
            "time_to_mitigate_s": seconds_text(self.time_to_mitigate),
            "time_to_recover_s": seconds_text(self.time_to_recover),
            "exposure_s": seconds_text(self.exposure),
            "exposure_requests": self.exposed_requests,
            "exposure_units": self.exposed_units,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, JsonValue]) -> Recovery:
        """Read a record written by :meth:`to_record`, checking its derived figures.

        Raises:
            InvalidRequest: a field is missing or malformed.
            IntegrityError: a derived figure disagrees with the timestamps.
        """
        try:
            moments = {name: parse_time(str(record[name])) for name in _MOMENTS}
            value = cls(
                **moments,
                detection_requests=record["detection_latency_requests"],
                exposed_requests=record["exposure_requests"],
                exposed_units=record["exposure_units"],
            )
        except (KeyError, ValueError) as e:
            raise InvalidRequest(f"not a recovery record: {e}") from e
        if value.to_record() != dict(record):
            raise IntegrityError("recovery record's derived figures disagree with its timestamps")
        return value
