"""The registry service's state: :class:`Supply` holds what every supply verb works on.

Owns the config, the clock, the blob store, the ledger, the workspace, the state of
automatic checkpoints and the per-command verification cache. Leaves the verbs to the
modules beside it (``packages``, ``keys``, ``aliases``, ``lineage``, ``audit``), which take
a :class:`Supply` as their first argument.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from breedlab.clock import Clock, SystemClock
from breedlab.config import LabConfig
from breedlab.errors import InvalidRequest
from breedlab.ledger import Event, Ledger
from breedlab.ledger.kinds import EventKind
from breedlab.ledger.merkle import Frontier
from breedlab.registry.blobs import BlobStore, Leftover
from breedlab.registry.stores import open_blob_store
from breedlab.supply.values import VerifyResult
from breedlab.supply.workspace import Workspace

__all__ = ["PACKAGE_KINDS", "TRUST_KINDS", "Supply", "VerificationCache", "require_reason"]

#: Events that change what verifies (trusted keys, revocations -- a revoked parent
#: fails its children): appending one empties the cache of this process.
TRUST_KINDS = frozenset(
    {EventKind.KEY_ADDED, EventKind.KEY_ENDORSED, EventKind.KEY_REVOKED, EventKind.PACKAGE_REVOKED}
)
#: Events that add to one package's checks (a signature, an approval): appending one
#: drops that package (the event's subject) from the cache.
PACKAGE_KINDS = frozenset({EventKind.PACKAGE_SIGNED, EventKind.PACKAGE_APPROVED})


@dataclass(slots=True)
class VerificationCache:
    """What one command verified already: the trusted keys and the packages that passed."""

    trusted: Mapping[str, Ed25519PublicKey] | None = None
    passed: dict[str, VerifyResult] = field(default_factory=dict)


class Supply:
    """A lab's registry service: its store, ledger and workspace, opened from the config.

    ``read_only``: the ledger refuses to write and, in SQLite, is read without
    SQLAlchemy (decision record 0012).
    """

    def __init__(
        self, config: LabConfig, *, clock: Clock | None = None, read_only: bool = False
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.blobs: BlobStore = open_blob_store(
            config.store_url,
            config.root,
            endpoint=config.store_endpoint,
            region=config.store_region,
        )
        self.ledger = Ledger(config.ledger_sqlalchemy_url, self.clock, read_only=read_only)
        self.workspace = Workspace(config.work_dir, self.blobs)
        self.unanchored = False  # events appended here that no checkpoint covers yet
        self.frontier: Frontier | None = None  # the tree the last checkpoint signed
        self.checkpoint_lock = threading.Lock()
        #: Temporary files of interrupted writes removed by open (reported by verify_store).
        self.leftovers: tuple[Leftover, ...] = ()
        self._commands = threading.local()  # a server's threads each run their own

    @property
    def actor(self) -> str:
        return self.config.who

    def events(self, *, after: int = 0, kinds: Sequence[str] = ()) -> list[Event]:
        """The ledger's events after ``after``, only ``kinds`` if given, oldest first."""
        with self.ledger.reader() as r:
            return list(r.events(after=after, kinds=kinds))

    @contextlib.contextmanager
    def command(self) -> Iterator[None]:
        """One command's scope: inside it each package is verified once and the trusted
        keys are derived once (a nested scope joins the outer one). What this process
        appends meanwhile is forgotten (:data:`TRUST_KINDS`, :data:`PACKAGE_KINDS`);
        another process's revocation meanwhile is still refused where it matters: a
        writer's own transaction re-checks it (``aliases.append_move``)."""
        if self.cache is not None:
            yield
            return
        self._commands.cache = VerificationCache()
        try:
            yield
        finally:
            self._commands.cache = None

    @property
    def cache(self) -> VerificationCache | None:
        """The running command's verification cache (None outside :meth:`command`)."""
        cache: VerificationCache | None = getattr(self._commands, "cache", None)
        return cache

    def forget(self, events: Sequence[Event]) -> None:
        """Forget what the running command verified that ``events`` (appended by this
        process) may change."""
        cache = self.cache
        if cache is None:
            return
        if any(e.kind in TRUST_KINDS for e in events):
            self._commands.cache = VerificationCache()
            return
        for e in events:
            if e.kind in PACKAGE_KINDS:
                cache.passed.pop(e.subject, None)


def require_reason(reason: str) -> None:
    if not reason.strip():
        raise InvalidRequest("a reason is required (--reason TEXT)")
