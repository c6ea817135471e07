"""The scripted tour behind ``breedlab demo`` (what ``make demo`` runs).

A fresh lab on the embedded default (files + SQLite, no servers), then the seed's stages
0-2 end to end with real data, real training and real evaluation: keys for the four
owners; the built-in ``digits`` capability (contract, signed data splits, a champion
trained from source by the ``train`` operator in the sandbox, a robust sibling, the frozen
suite); refusals of what must be refused; the champion's failure clusters; one full
breeding round (every allowed operator in the sandbox, evaluation against the champion
and the no-op, the viability decision); the decision explained from the ledger; the
winner reproduced from its recipe; a signed checkpoint; verification of everything; the
champion reconstructed from its sources. Nothing about the outcome is scripted: the
round may pick a winner or archive everything, and the tour reports what happened.

Each step is reported through a callback so the CLI can render it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from breedlab.canonical import JsonValue
from breedlab.errors import Conflict, InvalidRequest, LabError
from breedlab.lab import Lab

__all__ = ["DemoSummary", "Step", "run_demo"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    title: str
    detail: str
    command: str  # the CLI command a user would type for this step


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSummary:
    lab: Path
    champion: str
    winner: str | None
    decision_seq: int
    report: str
    round: Mapping[str, JsonValue]
    events: int
    steps: int


def run_demo(
    path: Path, report: Callable[[Step], None], *, seed: int = 0, workers: int = 2
) -> DemoSummary:
    """Run the tour in a fresh lab at ``path``; ``report`` receives each step."""
    steps = 0

    def say(title: str, detail: str, command: str) -> None:
        nonlocal steps
        steps += 1
        report(Step(title=title, detail=detail, command=command))

    def progress(message: str) -> None:
        report(Step(title="", detail=message, command=""))

    lab = Lab.init(path, name="demo")
    with lab:
        say("init", f"a fresh lab at {path} (files + SQLite)", f"breedlab init {path}")
        owners = {"alice": "model", "erin": "evaluation", "sam": "security", "pat": "production"}
        for name, role in owners.items():
            lab.generate_key(name, role)
        say(
            "keys",
            "Ed25519 keys for the model, evaluation, security and production owners "
            "(plus 'lab', which signs ledger checkpoints)",
            "breedlab keys generate alice --role model",
        )
        boot = lab.bootstrap_digits(
            model_key="alice",
            evaluation_key="erin",
            production_key="pat",
            seed=seed,
            workers=workers,
            progress=progress,
        )
        say(
            "capability",
            f"digits: contract, 4 signed data splits, champion {boot.champion.short} trained "
            f"from source in the sandbox, robust sibling, suite with {boot.critical_items} "
            "critical items",
            "breedlab capability bootstrap digits --model-key alice --evaluation-key erin "
            "--production-key pat",
        )
        with tempfile.TemporaryDirectory(prefix="breedlab-demo-") as scratch:
            pickle_file = Path(scratch) / "weights.pt"
            pickle_file.write_bytes(b"\x80\x04not really a pickle")
            try:
                lab.import_path(pickle_file, kind="model", capability="digits", license="MIT")
            except InvalidRequest as e:
                say("refused", f"pickle weights: {e.message}", "breedlab import weights.pt ...")
        try:  # a writer that read the alias before it was set: its move must lose
            lab.set_alias("digits", "champion", str(boot.champion), expect=None)
        except Conflict as e:
            say("refused", f"a stale alias move: {e.message}", "breedlab alias set ...")

        clusters = lab.failures("digits", workers=workers)
        worst = clusters[0] if clusters else None
        say(
            "failures",
            f"{len(clusters)} failure clusters; worst: "
            + (f"{worst.description}" if worst else "none"),
            "breedlab failures digits",
        )
        result = lab.run_round(
            "digits",
            failure_cluster=None if worst is None else str(worst.id),
            workers=workers,
            seed=seed,
            progress=progress,
        )
        record = result.record
        candidates = record["candidates"]
        assert isinstance(candidates, list)
        outcomes = ", ".join(f"{c['label']}: {c['outcome']}" for c in candidates)
        failed = record["failed"]
        assert isinstance(failed, list)
        verdict = (
            f"winner {result.winner.short} moved to digits@shadow"
            if result.winner is not None
            else "no winner: every candidate archived with its reasons"
        )
        say(
            "round",
            f"{len(candidates)} candidates scored, {len(failed)} failed; {verdict}. {outcomes}",
            "breedlab round digits --workers 2",
        )
        event, decision = lab.decision(str(result.decision_seq))
        decisions = decision["decisions"]
        assert isinstance(decisions, list)
        first = next(
            (d for d in decisions if d["candidate"] == decision.get("winner")),
            decisions[0] if decisions else None,
        )
        if first is not None:
            say(
                "explain",
                f"decision seq {event.seq}: {first['candidate'][:19]} -> {first['outcome']}: "
                + "; ".join(first["reasons"][:2]),
                f"breedlab explain {event.seq}",
            )
        target = result.winner or (
            None if not candidates else lab.resolve(str(candidates[0]["package"]))
        )
        if target is not None:
            again = lab.reproduce(str(target), workers=workers)
            say(
                "reproduce",
                f"{target.short} re-run from its recorded recipe in a fresh sandbox: "
                + ("same id" if again.match else f"DIFFERENT id ({again.recomputed})"),
                f"breedlab reproduce {target.hex[:12]}",
            )
            if not again.match:
                raise LabError(f"candidate {target.short} did not reproduce")
        checkpoint = lab.checkpoint()
        say(
            "checkpoint",
            f"signed RFC 6962 tree head over {checkpoint.payload['tree_size']} events",
            "breedlab ledger checkpoint",
        )
        results = lab.verify()
        store = lab.verify_store()
        ledger = lab.verify_ledger()
        bad = [r for r in results if not r.ok]
        if bad or store.problems:
            raise LabError(f"demo verification failed: {bad or store.problems}")
        say(
            "verify --all",
            f"{len(results)} packages, {store.objects} objects re-hashed, "
            f"{ledger.events} ledger events chained, checkpoints verified",
            "breedlab verify --all",
        )
        graph = lab.lineage(str(result.winner or boot.champion))
        chain = " <- ".join(f"{n.name} ({n.build_type})" for n in graph.ancestors[:4])
        say("lineage", chain, "breedlab lineage digits@shadow")
        rebuilt = lab.reconstruct("digits@champion", workers=workers)
        say(
            "reconstruct",
            f"champion rebuilt from its sources (train re-run, {len(rebuilt.replayed)} "
            f"step(s)); ids {'match' if rebuilt.match else 'DIFFER'}",
            "breedlab reconstruct digits@champion",
        )
        if not rebuilt.match:
            raise LabError("the champion could not be reconstructed")
        events = len(lab.events())
    return DemoSummary(
        lab=path,
        champion=str(boot.champion),
        winner=None if result.winner is None else str(result.winner),
        decision_seq=result.decision_seq,
        report=str(result.report),
        round=record,
        events=events,
        steps=steps,
    )
