"""The Lab: the one library API. It builds the components from the lab's config and
joins them; the CLI and the HTTP app are thin shells over it.

A facade: the registry's verbs are the supply service's (``breedlab.supply``, one
:class:`~breedlab.supply.Supply` per Lab, ``lab.supply``), the challenger loop's and the
release controls' are in the modules beside this one. Each method here is the few lines
that join them (a package's release records joined to its details, a lineage replayed).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar, Unpack

from breedlab import interrupts
from breedlab.canonical import JsonValue
from breedlab.clock import Clock
from breedlab.config import LabConfig, load_config
from breedlab.digest import Digest
from breedlab.errors import Interrupted
from breedlab.ledger import Event, Ledger
from breedlab.registry.blobs import BlobStore
from breedlab.supply import aliases, approvals, audit, layout
from breedlab.supply import keys as supply_keys
from breedlab.supply import lineage as supply_lineage
from breedlab.supply import packages as supply_packages
from breedlab.supply.approvals import PURPOSES
from breedlab.supply.service import Supply
from breedlab.supply.values import (
    LineageGraph,
    LineageNode,
    PackageDetails,
    Reconstruction,
)
from breedlab.supply.workspace import Workspace

if TYPE_CHECKING:  # the challenger loop pulls in numpy and scipy: imported when used
    from breedlab.jobs import ParentInput
    from breedlab.lab.breeding import RoundResult
    from breedlab.lab.builtin import Bootstrap
    from breedlab.lab.failures import Cluster
    from breedlab.lab.migration import MigrationReport
    from breedlab.lab.release_reports import Criterion
    from breedlab.lab.replay import Reproduction
    from breedlab.lab.samples import Samples
    from breedlab.release.canary import ExposureCap
    from breedlab.release.gates import ShadowGate
    from breedlab.release.shadow_stats import ShadowPair, ShadowReport
    from breedlab.release.state import ReleaseState
    from breedlab.sandbox.executors import Executor
    from breedlab.serving.router import Router, RouterOptions
    from breedlab.supply.evidence import Evidence

__all__ = ["PURPOSES", "Lab"]


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _interruptible(
    command: Callable[Concatenate[Lab, _P], _R],
) -> Callable[Concatenate[Lab, _P], _R]:
    """A long command: SIGINT or SIGTERM stops it at its next safe point
    (``breedlab.interrupts``), and the error names the last event recorded. Inside it,
    each package is verified once (:meth:`Supply.command`)."""

    @functools.wraps(command)
    def run(lab: Lab, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with interrupts.stop_on_signals() as outermost, lab.supply.command():
            try:
                return command(lab, *args, **kwargs)
            except Interrupted as e:
                if not outermost:
                    raise
                with lab.ledger.reader() as r:
                    seq, kind = r.head()[0], r.last_event_kind()
                raise Interrupted(
                    f"{e.message}; nothing was recorded after event {seq} ({kind})"
                ) from None

    return run


def _on_supply(
    verb: Callable[Concatenate[Supply, _P], _R],
) -> Callable[Concatenate[Lab, _P], _R]:
    """A registry verb as a Lab method: the same signature and docstring, run on
    ``lab.supply``."""

    @functools.wraps(verb)
    def method(lab: Lab, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return verb(lab.supply, *args, **kwargs)

    return method


class Lab:
    """A breedlab lab on disk (embedded default: files + SQLite)."""

    def __init__(
        self, config: LabConfig, *, clock: Clock | None = None, read_only: bool = False
    ) -> None:
        self.supply = Supply(config, clock=clock, read_only=read_only)
        audit.anchor_automatically(self.supply)

    @property
    def config(self) -> LabConfig:
        return self.supply.config

    @property
    def clock(self) -> Clock:
        return self.supply.clock

    @property
    def blobs(self) -> BlobStore:
        return self.supply.blobs

    @property
    def ledger(self) -> Ledger:
        return self.supply.ledger

    @property
    def workspace(self) -> Workspace:
        return self.supply.workspace

    @property
    def actor(self) -> str:
        return self.supply.actor

    def executor(self, workers: int | None = None) -> Executor:
        """The configured executor (``[executor]`` in breedlab.toml)."""
        from breedlab.sandbox.executors import make_executor

        return make_executor(
            self.config.executor,
            workers or self.config.workers,
            ray_address=self.config.ray_address,
        )

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def init(cls, path: Path, *, name: str | None = None, clock: Clock | None = None) -> Lab:
        """Create a lab at ``path`` (DESIGN §3 layout) with a ``lab`` key for checkpoints.

        Raises:
            Conflict: a lab exists there already.
            InvalidRequest: ``path`` exists and is a non-empty folder without a lab.
        """
        config, lab_key = layout.create_layout(path, name=name)
        lab = cls(config, clock=clock)
        layout.first_keys(lab.supply, lab_key)
        return lab

    @classmethod
    def open(cls, path: Path, *, clock: Clock | None = None, read_only: bool = False) -> Lab:
        """Open the lab at ``path``. Raises ConfigError if there is none.

        Removes the temporary files that interrupted writes (a killed import) left in
        the store -- never those of a write in progress in another process.
        ``read_only``: for commands that only read; its ledger refuses to write and, in
        SQLite, is read without loading SQLAlchemy (decision record 0012).
        """
        lab = cls(load_config(path), clock=clock, read_only=read_only)
        lab.ledger.create()
        lab.supply.leftovers = audit.clean_temporary(lab.supply)
        return lab

    def close(self) -> None:
        """Sign a checkpoint over what this Lab appended (DESIGN §13: checkpoints are
        automatic), then release the database."""
        audit.close(self.supply)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the registry's verbs (breedlab.supply): each takes the Supply first -------------

    generate_key = _on_supply(supply_keys.generate_key)
    key = _on_supply(supply_keys.key)
    keys = _on_supply(supply_keys.keys)
    revoke_key = _on_supply(supply_keys.revoke_key)
    endorse_keys = _on_supply(supply_keys.endorse_keys)
    factory_signer = _on_supply(supply_keys.factory_signer)
    release_signer = _on_supply(supply_keys.release_signer)

    add_capability = _on_supply(supply_packages.add_capability)
    capability = _on_supply(supply_packages.capability)
    capabilities = _on_supply(supply_packages.capabilities)
    import_path = _on_supply(supply_packages.import_path)
    resolve = _on_supply(supply_packages.resolve)
    manifest = _on_supply(supply_packages.manifest)
    package = _on_supply(supply_packages.package)
    packages = _on_supply(supply_packages.packages)
    sign = _on_supply(approvals.sign)
    approve = _on_supply(approvals.approve)
    revoke = _on_supply(approvals.revoke)

    set_alias = _on_supply(aliases.set_alias)
    alias = _on_supply(aliases.alias)
    alias_history = _on_supply(aliases.alias_history)

    verify = _on_supply(audit.verify)
    verify_store = _on_supply(audit.verify_store)
    verify_evidence = _on_supply(audit.verify_evidence)
    verify_ledger = _on_supply(audit.verify_ledger)
    checkpoint = _on_supply(audit.checkpoint)
    witness_export = _on_supply(audit.witness_export)
    sign_history = _on_supply(audit.sign_history)

    decision = _on_supply(supply_lineage.decision)

    def events(self, *, after: int = 0, kinds: Sequence[str] = ()) -> list[Event]:
        with self.ledger.reader() as r:
            return list(r.events(after=after, kinds=kinds))

    def show(self, ref: str) -> PackageDetails:
        """A package's details (:func:`breedlab.supply.packages.show`), its release
        records joined."""
        from breedlab.lab.release_reports import release_records

        details = supply_packages.show(self.supply, ref)
        pid = str(details.info.id)
        return dataclasses.replace(details, release=release_records(self, [pid])[pid])

    # -- lineage and reconstruction -----------------------------------------------------------

    def lineage(self, ref: str) -> LineageGraph:
        """Ancestors (the package first, then breadth-first) and descendants of a package,
        each with its release records."""
        from breedlab.lab.release_reports import release_records

        graph = supply_lineage.lineage(self.supply, self.resolve(ref))
        joined = release_records(self, [n.id for n in (*graph.ancestors, *graph.descendants)])

        def join(nodes: Iterable[LineageNode]) -> tuple[LineageNode, ...]:
            return tuple(dataclasses.replace(n, release=joined[n.id]) for n in nodes)

        return dataclasses.replace(
            graph, ancestors=join(graph.ancestors), descendants=join(graph.descendants)
        )

    @_interruptible
    def reconstruct(
        self, ref: str, *, out: Path | None = None, workers: int | None = None
    ) -> Reconstruction:
        """Rebuild a package's folder from the store and re-derive its id from those files.

        For a package made by an operator, first replay its whole lineage: every
        operator-made ancestor (and the package itself) is re-run from its recorded
        recipe and source packages, and must give the recorded id.

        Raises:
            InvalidRequest: ``out`` exists and is not empty.
            IntegrityError: a blob is corrupt (nothing half-written is left behind).
        """
        pid = self.resolve(ref)
        manifest = self.manifest(pid)
        folder = supply_lineage.empty_target(self.supply, pid, out)
        from breedlab.lab.replay import NOT_REPLAYABLE, build_type, replay_lineage

        replayed: tuple[tuple[str, str, str | None], ...] = ()
        if build_type(self, pid) not in NOT_REPLAYABLE or any(
            build_type(self, p) not in NOT_REPLAYABLE for p in manifest.parents
        ):
            steps = replay_lineage(self, pid, executor=self.executor(workers))
            replayed = tuple((r.package, r.operator, r.recomputed) for r in steps)
        recomputed, files = supply_lineage.rebuild(self.supply, pid, folder)
        return Reconstruction(
            package=str(pid),
            folder=str(folder),
            recomputed=recomputed,
            files=files,
            replayed=replayed,
        )

    # -- the challenger loop (seed, stage 2) --------------------------------------------------

    @_interruptible
    def bootstrap_digits(
        self,
        *,
        model_key: str,
        evaluation_key: str,
        production_key: str,
        seed: int = 0,
        workers: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Bootstrap:
        """Set up the built-in digits capability: data, champion, sibling parent, suite."""
        from breedlab.lab.builtin import bootstrap_digits

        return bootstrap_digits(
            self,
            model_key=model_key,
            evaluation_key=evaluation_key,
            production_key=production_key,
            executor=self.executor(workers),
            seed=seed,
            progress=progress,
        )

    @_interruptible
    def failures(self, capability: str, *, workers: int | None = None) -> list[Cluster]:
        """Mine the champion's failure clusters on dev and record each as a dataset."""
        from breedlab.lab.failures import mine_failures

        return mine_failures(self, capability, executor=self.executor(workers))

    @_interruptible
    def run_round(
        self,
        capability: str,
        *,
        failure_cluster: str | None = None,
        operators: Sequence[str] | None = None,
        workers: int | None = None,
        seed: int = 0,
        progress: Callable[[str], None] | None = None,
    ) -> RoundResult:
        """One breeding round (seed: run_breeding_lab_round); writes an HTML report."""
        from breedlab.lab.breeding import approved_parents, run_round
        from breedlab.lab.failures import latest_clusters, mine_failures
        from breedlab.lab.recipes import default_plans
        from breedlab.report import render_round_report

        approved_parents(self, capability)  # refuse bad parents before any job runs
        executor = self.executor(workers)
        if failure_cluster is not None:
            cluster: Digest | None = self.resolve(failure_cluster)
        else:
            clusters = latest_clusters(self, capability) or mine_failures(
                self, capability, executor=executor
            )
            cluster = clusters[0].id if clusters else None
        result = run_round(
            self,
            capability,
            plans_for=lambda parents, c, data, s: default_plans(self, parents, c, data, s),
            failure_cluster=cluster,
            operators=operators,
            executor=executor,
            seed=seed,
            progress=progress,
        )
        reports = self.config.root / "reports" / capability  # rounds are numbered per capability
        reports.mkdir(parents=True, exist_ok=True)
        path = reports / f"{result.round_id}.html"
        path.write_text(render_round_report(result.record), "utf-8")
        return dataclasses.replace(result, report=str(path))

    @_interruptible
    def reproduce(self, ref: str, *, workers: int | None = None) -> Reproduction:
        """Re-run the operator recorded in a package's provenance and compare ids."""
        from breedlab.lab.replay import reproduce

        return reproduce(self, self.resolve(ref), executor=self.executor(workers))

    def parent_input(self, model: Digest) -> ParentInput:
        """A registered model as a job's input: materialised, bounded by its capability's
        memory budget."""
        from breedlab.lab.evaluation import parent_input

        return parent_input(self, model)

    @staticmethod
    def samples(capability: str, out: Path) -> Samples:
        """Write the sample dataset and model folders of a built-in capability (no lab
        needed). Raises InvalidRequest for other capabilities or an existing folder."""
        from breedlab.lab.samples import write_samples

        return write_samples(capability, out)

    # -- scale-out ---------------------------------------------------------------------

    def migrate(
        self,
        target: Path,
        *,
        store_url: str = "objects",
        ledger_url: str = "ledger.db",
        store_endpoint: str = "",
        store_region: str = "",
    ) -> MigrationReport:
        """Copy this lab into a new lab folder on other backends, verifying every object
        and the ledger chain (``breedlab.lab.migration``). The defaults are the embedded
        ones, so a scale-out lab migrates back with just a target.

        Raises:
            InvalidRequest: ``target`` is not an empty folder.
            Conflict: the target store or ledger is not empty.
            IntegrityError: an object or the chain does not verify.
        """
        from breedlab.lab.migration import migrate

        return migrate(
            self,
            target,
            store_url=store_url,
            ledger_url=ledger_url,
            store_endpoint=store_endpoint,
            store_region=store_region,
        )

    # -- release controls (seed, stage 3) -----------------------------------------------------

    def release_state(self, capability: str) -> ReleaseState:
        """The capability's release state, folded from the ledger."""
        from breedlab.lab.release import release_state

        return release_state(self, capability)

    def stale_release_aliases(self, capability: str) -> dict[str, str]:
        """``shadow``/``canary`` aliases whose run has ended, each with why."""
        from breedlab.lab.release import stale_release_aliases

        return stale_release_aliases(self, capability)

    def router(self, **options: Unpack[RouterOptions]) -> Router:
        """A :class:`~breedlab.serving.router.Router` over this lab, writing the ledger
        events it asks for through a :class:`~breedlab.lab.release.LabRecorder`;
        ``options`` are the router's keyword arguments.

        Raises:
            InvalidRequest: an unknown shadow priority.
            IntegrityError: the ledger does not verify (the router refuses to start).
        """
        from breedlab.lab.release import LabRecorder
        from breedlab.serving.router import Router

        return Router(self, LabRecorder(self), **options)

    def shadow_start(
        self, capability: str, ref: str, *, sample: float = 1.0, key: str | None = None
    ) -> Event:
        """Put a recommended or approved package on ``capability@shadow`` and mirror to it
        (signed by a production ``key``, else ``[signing] release_key``)."""
        from breedlab.lab.release import start_shadow

        return start_shadow(self, capability, ref, sample=sample, key=key)

    def shadow_stop(self, capability: str, *, key: str | None = None) -> Event:
        """Stop mirroring; the run's evidence is sealed. Raises NotFound when none runs."""
        from breedlab.lab.release import stop_shadow

        return stop_shadow(self, capability, key=key)

    def shadow_pairs(
        self, capability: str, *, sealed_only: bool = False
    ) -> tuple[Digest, list[ShadowPair], Evidence]:
        """The latest shadow run's package, its mirrored pairs and their evidence."""
        from breedlab.lab.release import read_shadow_pairs

        return read_shadow_pairs(self, capability, sealed_only=sealed_only)

    def shadow_wait(self, capability: str, pairs: int, *, timeout: float) -> int:
        """Wait until the running shadow has ``pairs`` answered pairs; returns how many."""
        from breedlab.lab.release import wait_for_shadow_pairs

        return wait_for_shadow_pairs(self, capability, pairs, timeout=timeout)

    def shadow_report(self, capability: str) -> tuple[Digest, ShadowReport]:
        """The current shadow run in numbers (agreement, flips, latency ratios, errors)."""
        from breedlab.lab.release import shadow_report

        return shadow_report(self, capability)

    def shadow_replay(
        self, capability: str, log: Path, *, ref: str | None = None
    ) -> tuple[Digest, ShadowReport]:
        """Offline shadow: replay a request log through the champion and a challenger."""
        from breedlab.lab.release import replay_shadow

        return replay_shadow(self, capability, log, ref=ref)

    def canary_start(
        self,
        capability: str,
        *,
        percent: float | None = None,
        gate: ShadowGate | None = None,
        cap: ExposureCap | None = None,
        stage_min: int | None = None,
        key: str | None = None,
    ) -> Event:
        """Start a canary of the shadow package once the shadow ``gate`` passes (signed by
        a production ``key``). ``cap`` bounds each stage's exposure (default: 1000 canary
        requests per stage), and must allow the ``stage_min`` requests a stage needs."""
        from breedlab.lab.release import start_canary

        return start_canary(
            self, capability, percent=percent, gate=gate, cap=cap, stage_min=stage_min, key=key
        )

    def canary_status(self, capability: str) -> dict[str, JsonValue]:
        """Stage, weight and guardrail statistics of the latest canary."""
        from breedlab.lab.release import canary_status

        return canary_status(self, capability)

    def canary_stop(self, capability: str, *, reason: str, key: str | None = None) -> Event:
        """Stop a running canary by hand (100% to the champion; the id is not retired)."""
        from breedlab.lab.release import stop_canary

        return stop_canary(self, capability, reason=reason, key=key)

    def promote(
        self,
        capability: str,
        ref: str,
        *,
        baking: timedelta | None = None,
        key: str | None = None,
    ) -> Event:
        """Move ``champion`` to a package that passed the release controls (approvals by
        tier; shadow and canary unless it is the capability's first champion), signed by
        a production ``key`` (else ``[signing] release_key``).

        ``baking``: how long servers keep the old champion loaded (default one hour).
        """
        from breedlab.lab.promotion import PromotionPolicy, promote

        policy = PromotionPolicy() if baking is None else PromotionPolicy(baking=baking)
        return promote(self, capability, ref, policy=policy, key=key)

    def rollback(
        self,
        capability: str,
        *,
        switch: Callable[[], None] | None = None,
        verify: Callable[[Digest], None] | None = None,
        key: str | None = None,
    ) -> Event:
        """Return ``champion`` to ``previous``; records the measured recovery time.
        ``switch`` is an in-process server's swap, ``verify`` its check that the restored
        champion serves (:func:`breedlab.lab.promotion.rollback`)."""
        from breedlab.lab.promotion import rollback

        return rollback(self, capability, switch=switch, verify=verify, key=key)

    @_interruptible
    def exit_criteria(self, capability: str, *, workers: int | None = None) -> list[Criterion]:
        """The seed's v1 exit criteria, each pass/fail with evidence."""
        from breedlab.lab.release_reports import exit_criteria

        return exit_criteria(self, capability, workers=workers)
