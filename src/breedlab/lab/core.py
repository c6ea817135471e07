"""The Lab: the one library API. It builds the components from the lab's config and
joins them; the CLI and the HTTP app are thin shells over it.

A facade: the registry's verbs are the supply service's (``breedlab.supply``, one
:class:`~breedlab.supply.Supply` per Lab, ``lab.supply``), the challenger loop's and the
release controls' are in the modules beside this one, which take that Supply first (and
an executor where jobs run); none of them imports this module. Each method here is the
few lines that join them (a package's release records joined to its details, a lineage
replayed, an executor made from the config).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar, Unpack

from breedlab import interrupts
from breedlab.clock import Clock
from breedlab.config import LabConfig, load_config
from breedlab.digest import Digest
from breedlab.errors import Interrupted
from breedlab.lab import migration, promotion, recipes, release
from breedlab.ledger import Event
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
from breedlab.supply.view import RegistryView

if TYPE_CHECKING:  # the challenger loop pulls in numpy and scipy: imported when used
    from breedlab.jobs import ParentInput
    from breedlab.lab.breeding import RoundResult
    from breedlab.lab.builtin import Bootstrap
    from breedlab.lab.data_import import Imported
    from breedlab.lab.failures import Cluster
    from breedlab.lab.release_reports import Criterion
    from breedlab.lab.replay import Reproduction
    from breedlab.lab.reviews_bootstrap import ReviewsData
    from breedlab.lab.samples import Samples
    from breedlab.lab.suites import SuiteBuild
    from breedlab.sandbox.executors import Executor
    from breedlab.serving.router import Router, RouterOptions

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


class Lab(RegistryView):
    """A breedlab lab on disk (embedded default: files + SQLite)."""

    def __init__(
        self, config: LabConfig, *, clock: Clock | None = None, read_only: bool = False
    ) -> None:
        super().__init__(Supply(config, clock=clock, read_only=read_only))
        audit.anchor_automatically(self.supply)

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
    capabilities = _on_supply(supply_packages.capabilities)
    import_path = _on_supply(supply_packages.import_path)
    resolve = _on_supply(supply_packages.resolve)
    package = _on_supply(supply_packages.package)
    packages = _on_supply(supply_packages.packages)
    sign = _on_supply(approvals.sign)
    approve = _on_supply(approvals.approve)
    revoke = _on_supply(approvals.revoke)

    set_alias = _on_supply(aliases.set_alias)
    alias = _on_supply(aliases.alias)
    alias_history = _on_supply(aliases.alias_history)

    verify_store = _on_supply(audit.verify_store)
    verify_evidence = _on_supply(audit.verify_evidence)
    verify_ledger = _on_supply(audit.verify_ledger)
    checkpoint = _on_supply(audit.checkpoint)
    witness_export = _on_supply(audit.witness_export)
    sign_history = _on_supply(audit.sign_history)

    decision = _on_supply(supply_lineage.decision)

    events = _on_supply(Supply.events)

    def show(self, ref: str) -> PackageDetails:
        """A package's details (:func:`breedlab.supply.packages.show`), its release
        records joined."""
        from breedlab.lab.release_reports import release_records

        details = supply_packages.show(self.supply, ref)
        pid = str(details.info.id)
        return dataclasses.replace(details, release=release_records(self.supply, [pid])[pid])

    # -- lineage and reconstruction -----------------------------------------------------------

    def lineage(self, ref: str) -> LineageGraph:
        """Ancestors (the package first, then breadth-first) and descendants of a package,
        each with its release records."""
        from breedlab.lab.release_reports import release_records

        graph = supply_lineage.lineage(self.supply, self.resolve(ref))
        nodes = (*graph.ancestors, *graph.descendants)
        joined = release_records(self.supply, [n.id for n in nodes])

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
        from breedlab.lab.replay import NOT_REPLAYABLE, build_type, replay_lineage

        pid = self.resolve(ref)
        folder = supply_lineage.empty_target(self.supply, pid, out)
        made = (pid, *self.manifest(pid).parents)
        steps = []
        if any(build_type(self.supply, p) not in NOT_REPLAYABLE for p in made):
            steps = replay_lineage(self.supply, pid, executor=self.executor(workers))
        recomputed, files = supply_lineage.rebuild(self.supply, pid, folder)
        return Reconstruction(
            package=str(pid),
            folder=str(folder),
            recomputed=recomputed,
            files=files,
            replayed=tuple((r.package, r.operator, r.recomputed) for r in steps),
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
            self.supply,
            model_key=model_key,
            evaluation_key=evaluation_key,
            production_key=production_key,
            executor=self.executor(workers),
            seed=seed,
            progress=progress,
        )

    @_interruptible
    def bootstrap_reviews(
        self,
        *,
        model_key: str,
        evaluation_key: str,
        production_key: str,
        size: str = "ci",
        seed: int = 0,
        workers: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Bootstrap:
        """Set up the built-in reviews capability: data, MiniLM champion, suite, sibling."""
        from breedlab.lab.builtin_reviews import bootstrap_reviews

        return bootstrap_reviews(
            self.supply,
            model_key=model_key,
            evaluation_key=evaluation_key,
            production_key=production_key,
            executor=self.executor(workers),
            size=size,
            seed=seed,
            progress=progress,
        )

    @_interruptible
    def bootstrap_reviews_data(
        self,
        *,
        key: str,
        size: str = "ci",
        seed: int = 0,
        progress: Callable[[str], None] | None = None,
    ) -> ReviewsData:
        """The built-in reviews capability's contract and its four data splits (``ci``:
        about 2,000 sentences; ``full``: all 12,752), signed by the evaluation ``key``."""
        from breedlab.lab.reviews_bootstrap import bootstrap_reviews_data

        return bootstrap_reviews_data(self.supply, size=size, seed=seed, key=key, progress=progress)

    @_interruptible
    def failures(self, capability: str, *, workers: int | None = None) -> list[Cluster]:
        """Mine the champion's failure clusters on dev and record each as a dataset."""
        from breedlab.lab.failures import mine_failures

        return mine_failures(self.supply, capability, executor=self.executor(workers))

    def cluster_key(self, ref: str | Digest) -> str:
        """The key of a failure-cluster dataset: what ``approve(..., clusters=...)`` scopes
        a parent approval to (``registry.cluster_keys``). Raises InvalidRequest if the
        package is not a failure cluster."""
        from breedlab.lab.parents import cluster_key_of

        pid = ref if isinstance(ref, Digest) else self.resolve(ref)
        return cluster_key_of(self.supply, pid)

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
        recipes: Path | None = None,
    ) -> RoundResult:
        """One breeding round (seed: run_breeding_lab_round); writes an HTML report.
        ``recipes``: the recipe file (default: ``LAB/recipes/CAP.toml``, else built in)."""
        from breedlab.lab.breeding import run_round_with_report

        return run_round_with_report(
            self.supply,
            capability,
            failure_cluster=failure_cluster,
            operators=operators,
            executor=functools.partial(self.executor, workers),
            seed=seed,
            progress=progress,
            recipes=recipes,
        )

    # -- recipes: which operator runs a round makes (lab/recipes.py) ----------------------

    recipe = _on_supply(recipes.recipe_for)
    init_recipe = _on_supply(recipes.init_recipe)

    @_interruptible
    def reproduce(self, ref: str, *, workers: int | None = None) -> Reproduction:
        """Re-run the operator recorded in a package's provenance and compare ids."""
        from breedlab.lab.replay import reproduce

        return reproduce(self.supply, self.resolve(ref), executor=self.executor(workers))

    @_interruptible
    def reproduce_decision(self, ref: str, *, workers: int | None = None) -> list[Reproduction]:
        """Re-run every candidate of a round's decision (``latest``, a seq, ``round-N``)
        and compare ids."""
        from breedlab.lab.replay import reproduce_decision

        return reproduce_decision(self.supply, ref, executor=self.executor(workers))

    def parent_input(self, model: Digest) -> ParentInput:
        """A registered model as a job's input: materialised, bounded by its capability's
        memory budget."""
        from breedlab.lab.operator_runs import model_input

        return model_input(self.supply, model)

    @staticmethod
    def samples(capability: str, out: Path) -> Samples:
        """Write the sample dataset and model folders of a built-in capability (no lab
        needed). Raises InvalidRequest for other capabilities or an existing folder."""
        from breedlab.lab.samples import write_samples

        return write_samples(capability, out)

    @_interruptible
    def exit_criteria(self, capability: str, *, workers: int | None = None) -> list[Criterion]:
        """The seed's v1 exit criteria, each pass/fail with evidence."""
        from breedlab.lab.release_reports import exit_criteria

        return exit_criteria(self.supply, capability, executor=self.executor(workers))

    # -- a capability of one's own (issue 12): its contract and its data -------------------

    @staticmethod
    def init_contract(
        out: Path,
        name: str,
        *,
        task: str,
        modality: str,
        labels: Sequence[str] = (),
        features: Sequence[str] = (),
        table: Path | None = None,
        label_column: str = "label",
        ignore: Sequence[str] = (),
    ) -> Path:
        """Write a commented contract TOML to ``out`` for its owner to edit (no lab
        needed). Labels and (tabular) features not given are read from ``table``, a data
        file: its ``label_column``'s values and its other columns but ``ignore``.
        Raises Conflict if ``out`` exists, InvalidRequest for bad arguments."""
        from breedlab.registry.contract_template import write_contract_template
        from breedlab.rows import describe_table

        if table is not None:
            found, seen = describe_table(table, label_column=label_column, ignore=ignore)
            labels = labels or seen
            features = features or (found if modality == "tabular" else ())
        return write_contract_template(
            out, name, task=task, modality=modality, labels=labels, features=features
        )

    @_interruptible
    def import_dataset(
        self,
        path: Path,
        *,
        capability: str,
        label_column: str,
        feature_columns: Sequence[str] = (),
        text_column: str | None = None,
        id_column: str | None = None,
        group_column: str | None = None,
        seed: int = 0,
        fractions: Mapping[str, float] | None = None,
        sign_with: str | None = None,
        license: str = "LicenseRef-unspecified",
        progress: Callable[[str], None] | None = None,
    ) -> Imported:
        """A user's CSV, JSONL or Parquet file, checked against the capability's contract
        and stored as its four splits (:func:`breedlab.lab.data_import.import_dataset`);
        ``feature_columns`` default to the contract's features; with ``group_column``
        each group's rows go whole into one split."""
        from breedlab.lab.data_import import Columns, import_dataset
        from breedlab.splits import DEFAULT_FRACTIONS

        return import_dataset(
            self.supply,
            path,
            capability=capability,
            columns=Columns(
                label=label_column,
                features=tuple(feature_columns),
                text=text_column,
                id=id_column,
                group=group_column,
            ),
            seed=seed,
            fractions=fractions or DEFAULT_FRACTIONS,
            sign_with=sign_with,
            license=license,
            progress=progress,
        )

    # -- suites for any capability (issue 12) -------------------------------------------

    def create_suite(
        self,
        capability: str,
        *,
        perturbations: Sequence[str] | None = None,
        critical: Sequence[str] = (),
        metrics: Sequence[str] | None = None,
        seed: int = 0,
        name: str | None = None,
        key: str | None = None,
    ) -> SuiteBuild:
        """Build, register and alias (``CAP@suite``) a frozen suite from the capability's
        contract and its ``data-*`` splits (:func:`breedlab.lab.suites.create_suite`),
        signed by ``key`` if given."""
        from breedlab.lab.suites import create_suite

        return create_suite(
            self.supply,
            capability,
            perturbations=perturbations,
            critical=critical,
            metrics=metrics,
            seed=seed,
            name=name,
            sign_with=key,
        )

    # -- scale-out and release controls (seed, stage 3): each takes the Supply first ----

    migrate = _on_supply(migration.migrate)

    release_state = _on_supply(release.release_state)
    stale_release_aliases = _on_supply(release.stale_release_aliases)
    shadow_start = _on_supply(release.start_shadow)
    shadow_stop = _on_supply(release.stop_shadow)
    shadow_pairs = _on_supply(release.read_shadow_pairs)
    shadow_wait = _on_supply(release.wait_for_shadow_pairs)
    shadow_report = _on_supply(release.shadow_report)
    shadow_replay = _on_supply(release.replay_shadow)
    canary_start = _on_supply(release.start_canary)
    canary_status = _on_supply(release.canary_status)
    canary_stop = _on_supply(release.stop_canary)
    rollback = _on_supply(promotion.rollback)

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
        policy = (
            promotion.PromotionPolicy()
            if baking is None
            else promotion.PromotionPolicy(baking=baking)
        )
        return promotion.promote(self.supply, capability, ref, policy=policy, key=key)

    def router(self, **options: Unpack[RouterOptions]) -> Router:
        """A :class:`~breedlab.serving.router.Router` over this lab, writing the ledger
        events it asks for through a :class:`~breedlab.lab.release.LabRecorder`;
        ``options`` are the router's keyword arguments.

        Raises:
            InvalidRequest: an unknown shadow priority.
            IntegrityError: the ledger does not verify (the router refuses to start).
        """
        from breedlab.serving.router import Router

        return Router(self, release.LabRecorder(self.supply), **options)
