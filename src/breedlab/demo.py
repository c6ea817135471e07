"""The scripted tour behind ``breedlab demo`` (what ``make demo`` runs).

A fresh lab on the embedded default (files + SQLite, no servers), then the seed's stages
0-2 end to end with real data, real training and real evaluation: keys for the four
owners; the built-in ``digits`` capability (contract, signed data splits, a champion
trained from source by the ``train`` operator in the sandbox, a robust sibling, the frozen
suite); refusals of what must be refused; the champion's failure clusters; one full
breeding round (every allowed operator in the sandbox, evaluation against the champion
and the no-op, the viability decision); the decision explained from the ledger; the
winner reproduced from its recipe; a signed checkpoint; verification of everything; the
champion reconstructed from its sources. Then stage 3 on a real HTTP server on
127.0.0.1: the winner in shadow on dev-split requests, a fault drill (a candidate with a
damaged head in canary, aborted by the guardrails without a human), the winner's canary
and promotion, a rollback with its measured recovery, and the v1 exit criteria. Nothing
about the outcome is scripted: the round may pick a winner or archive everything, and the
tour reports what happened (without a winner, the best archived candidate is shadowed and
its promotion is refused; promotion and rollback are shown with a hand-approved model).
Last, unless ``quick``, the same for the built-in text capability ``reviews`` at CI size
(``breedlab.demo_reviews``): MiniLM champion, text suite, a round of real text operators,
``serve`` answering a review.

Each step is reported through a callback so the CLI can render it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from breedlab.canonical import JsonValue
from breedlab.digest import Digest
from breedlab.errors import Conflict, InvalidRequest, LabError, PolicyError
from breedlab.lab import Lab
from breedlab.ledger import EventKind

if TYPE_CHECKING:
    import httpx

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
    reviews_round: Mapping[str, JsonValue] | None  # None: --quick
    events: int
    steps: int


def run_demo(
    path: Path,
    report: Callable[[Step], None],
    *,
    seed: int = 0,
    workers: int = 2,
    quick: bool = False,
) -> DemoSummary:
    """Run the tour in a fresh lab at ``path``; ``report`` receives each step. Then,
    unless ``quick``, the built-in text capability at CI size (``demo_reviews``)."""
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
        try:  # champion moves only by promotion or rollback, never by a bare alias move
            lab.set_alias("digits", "champion", str(boot.champion), key="pat")
        except PolicyError as e:
            say("refused", f"a bare champion move: {e.message}", "breedlab alias set ...")
        try:  # a writer that read the alias before it was set: its move must lose
            lab.set_alias("digits", "suite", str(boot.suite), expect=None)
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
            f"{ledger.events} ledger events chained, {ledger.signed} signatures and their "
            "authority replayed, checkpoints verified",
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
        _release_tour(lab, result.winner, candidates, say)
        reviews = None
        if not quick:
            from breedlab.demo_reviews import reviews_tour

            reviews = reviews_tour(lab, say, progress, seed=seed, workers=workers).round.record
        events = len(lab.events())
    return DemoSummary(
        lab=path,
        champion=str(boot.champion),
        winner=None if result.winner is None else str(result.winner),
        decision_seq=result.decision_seq,
        report=str(result.report),
        round=record,
        reviews_round=reviews,
        events=events,
        steps=steps,
    )


def _digits_requests(lab: Lab, n: int) -> list[dict[str, object]]:
    """``n`` request bodies from the digits dev split, labels included (for the canary),
    as ``breedlab traffic digits`` sends them."""
    from breedlab.http.traffic import dataset_requests, request_body

    _, items = dataset_requests(lab, "digits")
    return [request_body(items, i) for i in range(n)]


def _wait_for_dwell(lab: Lab, say: Callable[[str, str, str], None]) -> None:
    """Wait out the champion's minimum dwell (DESIGN §10: a champion is not replaced
    within its dwell), saying so: a demo round is faster than the dwell."""
    import time

    from breedlab.clock import parse_time
    from breedlab.release.promotion import PromotionPolicy

    dwell = PromotionPolicy().dwell.min_time
    moves = [m for m in lab.alias_history("digits") if m.alias == "champion"]
    if not moves:
        return
    left = (parse_time(moves[-1].at) + dwell - lab.clock.now()).total_seconds()
    if left > 0:
        say(
            "dwell",
            f"the champion moved {(dwell.total_seconds() - left):.0f} s ago; a champion "
            f"stays at least {dwell.total_seconds():.0f} s (no flip-flopping): waiting "
            f"{left:.0f} s before the promotion",
            "breedlab promote ... refuses with 'dwell not met' until then",
        )
        time.sleep(left + 0.5)


def _until(
    c: httpx.Client, requests: list[dict[str, object]], done: Callable[[], bool], *, extra: int = 0
) -> list[str]:
    """Send requests in chunks until ``done()``, then ``extra`` more; the roles served."""
    roles: list[str] = []
    for start in range(0, len(requests), 50):
        roles += [
            c.post("/v1/digits/predict", json=b).json()["role"]
            for b in requests[start : start + 50]
        ]
        if done():
            break
    end = len(roles)
    roles += [
        c.post("/v1/digits/predict", json=b).json()["role"] for b in requests[end : end + extra]
    ]
    return roles


def _approved_model(lab: Lab, folder: Path, name: str) -> Digest:
    """Import a torch model folder signed by alice and release-approve it by pat."""
    pid = lab.import_path(
        folder,
        kind="model",
        capability="digits",
        license="MIT",
        family="torch",
        name=name,
        sign_with="alice",
    ).id
    lab.approve(str(pid), purpose="release", key="pat")
    return pid


def _damaged(lab: Lab, champion: Digest, folder: Path) -> Path:
    """A genuinely bad model: the champion with its output head's rows permuted."""
    import torch

    from breedlab.families import load_model
    from breedlab.families.torch_family import save_torch_model

    parent = lab.parent_input(champion)  # bounded by the capability's budget
    model = load_model(parent.folder, parent.family, max_bytes=parent.max_bytes)
    module = model.module
    with torch.no_grad():
        state = module.state_dict()
        head = [k for k in state if k.startswith("head")]
        if not head:
            raise LabError("the champion has no 'head' layer to damage")
        rows = state[head[0]].shape[0]
        perm = torch.roll(torch.arange(rows), 3)
        for k in head:
            state[k].copy_(state[k][perm])
    save_torch_model(folder, model.config, module)
    return folder


def _release_tour(
    lab: Lab,
    winner: Digest | None,
    candidates: list[JsonValue],
    say: Callable[[str, str, str], None],
) -> None:
    """Seed stage 3 on a real server on 127.0.0.1 (DESIGN §11)."""
    import httpx

    from breedlab.http import create_app, serving
    from breedlab.release import ShadowGate

    token = "demo-admin-token"
    auth = {"Authorization": f"Bearer {token}"}
    requests = _digits_requests(lab, 1200)
    champion = lab.alias("digits", "champion")
    assert champion is not None
    target = winner
    if target is None:
        scored = [c for c in candidates if isinstance(c, dict) and c.get("outcome") == "archive"]
        pick = scored[0] if scored else (candidates[0] if candidates else None)
        if not isinstance(pick, dict):
            say("release", "no candidate to shadow", "")
            return
        target = lab.resolve(str(pick["package"]))
        lab.approve(str(target), purpose="release", key="pat")

    def release(c: httpx.Client, pkg: Digest) -> dict[str, object]:
        c.post("/admin/digits/shadow/start", json={"package": str(pkg)}).raise_for_status()
        for b in requests[:200]:
            c.post("/v1/digits/predict", json=b).raise_for_status()
        report = c.get("/admin/digits/shadow/report").json()
        r = c.post("/admin/digits/canary/start", json={"percent": 25})
        if r.status_code != 200:
            raise LabError(f"canary refused: {r.json()['message']}")
        roles = _until(c, requests, lambda: lab.release_state("digits").canary_passed)
        state = lab.release_state("digits")
        if not state.canary_passed:
            raise LabError(f"the canary of {pkg.short} did not pass: {roles.count('canary')}")
        return {"report": report, "canary_requests": roles.count("canary")}

    # The shadow process at normal priority: at idle priority (the serving default, so a
    # shadow never slows the champion) it gets no CPU at all on a busy machine, and the
    # tour, which waits for its mirrored pairs, would wait with it.
    app = create_app(lab, token=token, release_key="pat", shadow_priority="normal")
    with serving(app) as url, httpx.Client(base_url=url, headers=auth, timeout=60) as c:
        # 1. shadow
        c.post("/admin/digits/shadow/start", json={"package": str(target)}).raise_for_status()
        before = [c.post("/v1/digits/predict", json=b).json() for b in requests[:300]]
        report = c.get("/admin/digits/shadow/report").json()
        agree = report["agreement"]
        say(
            "shadow",
            f"{target.short} mirrored on {report['mirrored']} dev requests ({report['dropped']} "
            f"dropped): agreement {float(agree['estimate']):.3f} "
            f"[{float(agree['low']):.3f}, {float(agree['high']):.3f}], latency ratio p95 "
            f"{float(report['latency_p95']['ratio']):.2f}; every answer came from the champion",
            "breedlab shadow start digits digits@shadow && breedlab shadow report digits",
        )
        if any(a["role"] != "champion" for a in before):
            raise LabError("a shadow changed a primary response")
        c.post("/admin/digits/shadow/stop").raise_for_status()
        # 2. fault drill: a damaged candidate reaches the canary and is aborted by itself
        with tempfile.TemporaryDirectory(prefix="breedlab-demo-") as scratch:
            folder = _damaged(lab, champion, Path(scratch) / "damaged-head")
            bad = _approved_model(lab, folder, "damaged-head")
        c.post("/admin/digits/shadow/start", json={"package": str(bad)}).raise_for_status()
        for b in requests[:20]:
            c.post("/v1/digits/predict", json=b)
        c.get("/admin/digits/shadow/report")
        # Drill only: the real gate would stop this model in shadow (agreement ~0).
        drill_gate = ShadowGate(
            min_pairs=1, min_agreement=0.0, max_p50_ratio=1e9, max_p95_ratio=1e9
        )
        lab.canary_start("digits", percent=25, gate=drill_gate, key="pat")
        roles = _until(c, requests, lambda: lab.release_state("digits").canary is None, extra=200)
        aborted = [
            e
            for e in lab.events(kinds=(EventKind.CANARY_ABORTED,))
            if e.payload["package"] == str(bad)
        ]
        if not aborted:
            raise LabError("the damaged canary was not aborted")
        rec = aborted[-1].payload["recovery"]
        assert isinstance(rec, dict)
        last = max(i for i, r in enumerate(roles) if r == "canary")
        say(
            "canary abort",
            f"fault drill: {bad.short} (damaged head) aborted by "
            f"{', '.join(str(g) for g in aborted[-1].payload['aborted_by'])} after "
            f"{rec['detection_latency_requests']} canary requests "
            f"({rec['detection_latency_s']} s); time to mitigate {rec['time_to_mitigate_s']} s, "
            f"to recover {rec['time_to_recover_s']} s; {len(roles) - last - 1} later requests "
            "all served by the champion; the id is deny-listed",
            "breedlab canary status digits",
        )
        c.post("/admin/digits/shadow/stop").raise_for_status()
        # 3. canary and promotion of the target
        outcome = release(c, target)
        if winner is None:
            r = c.post("/admin/digits/promote", json={"package": str(target)})
            say(
                "promote",
                f"refused ({r.status_code}): {r.json()['message'][:160]}",
                f"breedlab promote digits {target.hex[:12]}",
            )
            target = _hand_approved(lab, champion)
            c.post("/admin/digits/shadow/stop")
            outcome = release(c, target)
        else:
            lab.approve(str(target), purpose="release", key="pat")
        say(
            "canary",
            f"{target.short}: stages 25% -> 50% passed on {outcome['canary_requests']} canary "
            "requests (SPRT on errors; mSPRT on wrong answers, disagreement, latency)",
            "breedlab canary start digits --percent 25",
        )
        _wait_for_dwell(lab, say)
        r = c.post("/admin/digits/promote", json={"package": str(target)})
        if r.status_code != 200:
            raise LabError(f"promotion refused: {r.json()['message']}")
        served = c.post("/v1/digits/predict", json=requests[0]).json()["package"]
        say(
            "promote",
            f"{target.short} is digits@champion (low risk tier: one release approval); "
            f"{champion.short} is digits@previous, kept warm; the server now answers with "
            f"{served[:19]}",
            f"breedlab promote digits {target.hex[:12]}",
        )
        # 4. rollback
        r = c.post("/admin/digits/rollback")
        r.raise_for_status()
        rb = r.json()["recovery"]
        served = c.post("/v1/digits/predict", json=requests[0]).json()["package"]
        if served != str(champion):
            raise LabError("the rollback did not reach the server")
        again = c.post("/admin/digits/rollback")
        say(
            "rollback",
            f"digits@champion back to {champion.short}, served within the same request "
            f"(recovered in {rb['time_to_recover_s']} s); a second rollback is refused "
            f"({again.status_code}): only a new promotion reverses it",
            "breedlab rollback digits",
        )
    shown = lab.show("digits@champion")
    say(
        "champion",
        f"{shown.info.id.short} signed by {', '.join(shown.signed_by)}; approved by "
        + ", ".join(f"{a.key} ({a.purpose})" for a in shown.approvals),
        "breedlab show digits@champion",
    )
    if "factory" not in shown.signed_by or not shown.approvals:
        raise LabError("the champion is not signed by the factory and approved")
    witness = lab.config.work_dir / "witness.json"  # a real one is kept outside the lab
    seen = lab.witness_export(witness)
    lab.set_alias("digits", "demo-end", str(shown.info.id), key="pat")
    proved = lab.verify_ledger(witness=witness)
    say(
        "witness",
        f"signed tree head of {seen.tree_size} events exported; after more events the "
        f"ledger is proved an extension of it: {proved.witness}",
        "breedlab ledger witness export FILE && breedlab ledger verify --witness FILE",
    )
    criteria = lab.exit_criteria("digits")
    for crit in criteria:
        say(
            "exit criteria",
            f"{'pass' if crit.passed else 'FAIL'}: {crit.name} ({crit.evidence})",
            "breedlab exit-criteria digits",
        )
    if not all(crit.passed for crit in criteria):
        raise PolicyError("a v1 exit criterion failed")


def _hand_approved(lab: Lab, champion: Digest) -> Digest:
    """A model imported and approved by hand, to show promotion and rollback."""
    import torch

    from breedlab.families import load_model
    from breedlab.families.torch_family import save_torch_model

    parent = lab.parent_input(champion)  # bounded by the capability's budget
    model = load_model(parent.folder, parent.family, max_bytes=parent.max_bytes)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.module.parameters():
            p.add_(torch.randn_like(p) * 1e-6)
    with tempfile.TemporaryDirectory(prefix="breedlab-demo-") as scratch:
        save_torch_model(Path(scratch) / "m", model.config, model.module)
        return _approved_model(lab, Path(scratch) / "m", "hand-approved")
