"""Release commands (seed, stage 3; DESIGN §11-12): ``serve``, ``shadow``, ``canary``,
``promote``, ``rollback`` and ``exit-criteria``. Each is parse, one Lab call, render;
the heavy modules (FastAPI, torch) are imported inside the command that needs them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from breedlab.cli.shell import (
    JsonFlag,
    console,
    fields,
    open_lab,
    print_json,
    progress,
    render,
    short_ids,
    styled,
    table,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from breedlab.http.traffic import TrafficSummary

__all__ = ["register"]

Cap = Annotated[str, typer.Argument(help="The capability, e.g. digits.")]
Pkg = Annotated[str, typer.Argument(help="A package id, unique prefix or CAP@alias.")]
Key = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="The production key that signs this (default: [signing] release_key).",
        show_default=False,
    ),
]

shadow_app = typer.Typer(help="Mirror requests to a challenger and compare.", no_args_is_help=True)
canary_app = typer.Typer(help="Expose a sticky low-risk cohort to the challenger.")
canary_app.info.no_args_is_help = True


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Bind address.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free port).")
    ] = 8000,
    release_key: Annotated[
        str | None,
        typer.Option(
            "--release-key",
            help="The production key that signs admin actions (default: [signing] release_key).",
            show_default=False,
        ),
    ] = None,
    max_body: Annotated[
        int,
        typer.Option("--max-body", min=1024, help="Largest request body in bytes (413 above)."),
    ] = 1 << 20,
    max_batch: Annotated[
        int,
        typer.Option(
            "--max-batch", min=1, help="Most requests in one predict:batch body (422 above)."
        ),
    ] = 64,
    shadow_priority: Annotated[
        str | None,
        typer.Option(
            "--shadow-priority",
            help="idle (only CPU nobody else wants) | normal (competes; keeps up on a busy "
            "host). Default: [release] shadow_priority.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON line (url, pid, admin_token_file) once it listens; "
            "log only warnings.",
        ),
    ] = False,
) -> None:
    """Serve the champions over HTTP (FastAPI + uvicorn); aliases hot-swap; admin needs a token.

    It listens before it says where (so the line, or the JSON line, means it accepts
    connections); SIGTERM stops it cleanly (evidence sealed, exit 0).
    """
    import gc
    import json
    import os
    import signal
    import sys
    import threading

    import uvicorn

    from breedlab.http import create_app, ensure_admin_token, listen

    # Hand the interpreter over more often than every 5 ms: request threads waiting on the
    # shadow worker or the event loop otherwise pay up to a whole interval in their p99.
    sys.setswitchinterval(0.0005)
    # One request on one CPU thread (the contracts' budgets): uvicorn's request threads
    # are the parallelism. torch's own intra-op pool made each single answer of a tiny
    # text model ~30x slower on a busy 2-core host (benchmarks/serve.py, part 6).
    import torch

    torch.set_num_threads(1)
    sock = listen(host, port)  # before the models load: a port in use fails at once
    with sock, open_lab(ctx) as lab:
        token = ensure_admin_token(lab.config.keys_dir)
        app = create_app(
            lab,
            release_key=release_key,
            max_body=max_body,
            max_batch=max_batch,
            shadow_priority=shadow_priority,
        )
        bound = sock.getsockname()[1]
        url = f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"
        if json_out:
            where = {"url": url, "admin_token_file": str(token), "pid": os.getpid()}
            sys.stdout.write(json.dumps(where, sort_keys=True) + "\n")
            sys.stdout.flush()
        else:
            console.print(f"serving on {url}; admin token in {token} (mode 0600)", soft_wrap=True)
        # Libraries and loaded models live as long as the server: move them out of the
        # collector's reach, so a gen-2 pass scans only what requests allocate (a pass
        # over torch's heap took 20-160 ms here, stalling every request thread).
        gc.collect()
        gc.freeze()
        config = uvicorn.Config(
            app, host=host, port=bound, log_level="warning" if json_out else "info"
        )
        # uvicorn shuts down gracefully on SIGTERM, then raises it again under the
        # handler that was there before: this one makes that a clean exit (0).
        stopped: list[int] = []
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread:
            before = signal.signal(signal.SIGTERM, lambda signum, _: stopped.append(signum))
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, before)
    if stopped and not json_out:
        console.print("stopped")


def _report_rows(record: dict[str, Any]) -> list[tuple[str, str]]:
    def prop(p: Any) -> str:
        if p is None:
            return "no data"
        return f"{float(p['estimate']):.3f} [{float(p['low']):.3f}, {float(p['high']):.3f}]"

    def ratio(r: Any) -> str:
        if r is None:
            return "no data"
        return f"{float(r['ratio']):.2f} [{float(r['low']):.2f}, {float(r['high']):.2f}]"

    # the flip matrix's record is [primary, shadow, count] rows
    flips = ", ".join(f"{primary}->{shadow}: {n}" for primary, shadow, n in record["flips"])
    return [
        ("mirrored", str(record["mirrored"])),
        ("dropped", str(record["dropped"])),
        ("answered pairs", str(record["answered"])),
        ("agreement (Wilson 95%)", prop(record["agreement"])),
        ("latency ratio p50 (bootstrap 95%)", ratio(record["latency_p50"])),
        ("latency ratio p95 (bootstrap 95%)", ratio(record["latency_p95"])),
        ("champion error rate", prop(record["primary_errors"])),
        ("shadow error rate", prop(record["shadow_errors"])),
        ("flips (champion->shadow)", flips or "none"),
    ]


def _print_report(title: str, record: dict[str, Any], json_out: bool) -> None:
    t = table("figure", "value", title=title)
    for row in _report_rows(record):
        t.add_row(*row)
    render(json_out, record, t)


@shadow_app.command("start")
def shadow_start(
    ctx: typer.Context,
    capability: Cap,
    package: Pkg,
    sample: Annotated[float, typer.Option("--sample", help="Share of requests mirrored.")] = 1.0,
    key: Key = None,
    json_out: JsonFlag = False,
) -> None:
    """Mirror a sampled share of requests to PKG (needs a shadow recommendation or approval)."""
    with open_lab(ctx) as lab:
        ev = lab.shadow_start(capability, package, sample=sample, key=key)
    if json_out:
        print_json({"seq": ev.seq, **dict(ev.payload)})
    else:
        console.print(f"shadow started for {capability}: {ev.payload['package']} (seq {ev.seq})")


@shadow_app.command("stop")
def shadow_stop(
    ctx: typer.Context, capability: Cap, key: Key = None, json_out: JsonFlag = False
) -> None:
    """Stop mirroring; the run's evidence is sealed into the store."""
    with open_lab(ctx) as lab:
        ev = lab.shadow_stop(capability, key=key)
    if json_out:
        print_json({"seq": ev.seq, **dict(ev.payload)})
        return
    sealed = len(ev.payload.get("evidence") or [])
    console.print(f"shadow stopped for {capability} (seq {ev.seq}; {sealed} sealed segment(s))")


@shadow_app.command("report")
def shadow_report(
    ctx: typer.Context,
    capability: Cap,
    wait_pairs: Annotated[
        int,
        typer.Option(
            "--wait-pairs",
            min=0,
            help="First wait until the running shadow has answered this many pairs "
            "(the gate to canary needs 50).",
        ),
    ] = 0,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="Seconds --wait-pairs waits at most.")
    ] = 600.0,
    json_out: JsonFlag = False,
) -> None:
    """Agreement, flip matrix, latency ratios, error rates, mirrored and dropped requests."""
    from breedlab.release.shadow_stats import summarise_shadow

    with open_lab(ctx) as lab:
        if wait_pairs:
            with progress(json_out, f"waiting for {wait_pairs} answered shadow pairs"):
                lab.shadow_wait(capability, wait_pairs, timeout=timeout)
        pid, pairs, evidence = lab.shadow_pairs(capability)
        running = lab.release_state(capability).shadow == pid
    rep = summarise_shadow(pairs, seed=0, resamples=2000)
    record = {
        "package": str(pid),
        **rep.to_record(),
        "evidence": {
            "sealed": evidence.sealed,
            "unsealed": evidence.unsealed,
            "digests": list(evidence.digests),
        },
    }
    _print_report(f"shadow {pid.short}", record, json_out)
    if not json_out:
        console.print(
            f"evidence: {evidence.sealed} record(s) sealed in {len(evidence.digests)} blob(s), "
            f"{evidence.unsealed} not sealed yet"
        )
        if running:  # the server's own count runs ahead of its log: say so, and where
            console.print(
                "the shadow runs: a pair counts here once the shadow process answered and "
                f"the server wrote it; GET /admin/{capability}/status has the live count"
            )


@shadow_app.command("replay")
def shadow_replay(
    ctx: typer.Context,
    capability: Cap,
    log: Annotated[Path, typer.Argument(help="JSON lines of predict request bodies.")],
    package: Annotated[
        str | None, typer.Option("--package", help="Challenger (default: CAP@shadow).")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Offline shadow: replay a request log through the champion and the challenger."""
    with open_lab(ctx) as lab:
        pid, rep = lab.shadow_replay(capability, log, ref=package)
    _print_report(f"replay {pid.short}", {"package": str(pid), **rep.to_record()}, json_out)


@canary_app.command("start")
def canary_start(
    ctx: typer.Context,
    capability: Cap,
    percent: Annotated[
        float | None, typer.Option("--percent", help="First stage in percent (default 1).")
    ] = None,
    max_requests: Annotated[
        int,
        typer.Option(
            "--max-requests",
            min=1,
            help="Exposure cap: canary requests per stage; a stage that reaches it "
            "undecided stops the canary (inconclusive).",
        ),
    ] = 1000,
    max_units: Annotated[
        int | None,
        typer.Option("--max-units", min=1, help="Exposure cap: distinct units per stage."),
    ] = None,
    key: Key = None,
    json_out: JsonFlag = False,
) -> None:
    """Start a canary of the shadow package after the shadow gate passes."""
    from breedlab.release import ExposureCap

    with open_lab(ctx) as lab:
        cap = ExposureCap(requests=max_requests, units=max_units)
        ev = lab.canary_start(capability, percent=percent, cap=cap, key=key)
    if json_out:
        print_json({"seq": ev.seq, **dict(ev.payload)})
    else:
        ramp = " -> ".join(f"{100 * float(str(w)):g}%" for w in ev.payload["ramp"])
        console.print(f"canary of {ev.payload['package']} started: {ramp} (seq {ev.seq})")


@canary_app.command("status")
def canary_status(ctx: typer.Context, capability: Cap, json_out: JsonFlag = False) -> None:
    """The stage, the guardrails' statistics and what would trigger an abort."""
    with open_lab(ctx) as lab:
        record = lab.canary_status(capability)
    if json_out:
        print_json(record)
        return
    console.print(
        f"canary {record['package']}: {record['status']}, stage {record['stage']} "
        f"at {100 * float(str(record['weight'])):g}%, {record['requests']} request(s) this stage"
    )
    cap = record["exposure_cap"]
    console.print(
        "exposure cap per stage: "
        f"{cap['requests'] or 'no limit on'} requests, {cap['units'] or 'no limit on'} units"
    )
    t = table("guardrail", "verdict", "n", "why / what would abort")
    for name, g in record["guardrails"].items():
        t.add_row(name, g["verdict"], str(g["n"]), g["explanation"])
    console.print(t)
    if "abort" in record:
        rec = record["abort"]["recovery"]
        console.print(
            f"aborted: detection {rec['detection_latency_requests']} requests / "
            f"{rec['detection_latency_s']} s, time to mitigate {rec['time_to_mitigate_s']} s"
        )
    elif "stop" in record:
        console.print(f"stopped: {record['stop']['reason']}")


@canary_app.command("stop")
def canary_stop(
    ctx: typer.Context,
    capability: Cap,
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "stopped by hand",
    key: Key = None,
    json_out: JsonFlag = False,
) -> None:
    """Stop the canary by hand: 100% to the champion."""
    with open_lab(ctx) as lab:
        ev = lab.canary_stop(capability, reason=reason, key=key)
    if json_out:
        print_json({"seq": ev.seq, **dict(ev.payload)})
        return
    console.print(f"canary stopped for {capability} (seq {ev.seq})")


def traffic(
    ctx: typer.Context,
    capability: Cap,
    url: Annotated[
        str,
        typer.Option(
            "--url", help="The server's base URL ('serve --json' prints it); loopback only."
        ),
    ] = "http://127.0.0.1:8000",
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="A dataset folder (such as 'breedlab samples' writes) or package (id, "
            "prefix, CAP@alias). Default: CAP@data-dev, the dev split.",
            show_default=False,
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            min=1,
            max=10_000_000,
            help="Requests to send, cycling through the items (default: one per item).",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[
        bool,
        typer.Option(
            "--labels/--no-labels",
            help="Send each item's label (a canary then counts wrong answers).",
        ),
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each answer.")
    ] = 120.0,
    json_out: JsonFlag = False,
) -> None:
    """Send predict requests made from a labelled dataset to a running server on this machine.

    Request i comes from unit user-i, so a canary's sticky cohort sees a steady share of
    them. Prints how many were answered, by whom (champion, canary) and which package,
    and the round-trip latency; exits non-zero if any request failed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from breedlab.http.traffic import dataset_requests, loopback_url, send_traffic

    base = loopback_url(url)  # refused before the lab is read
    with open_lab(ctx) as lab:
        shown, bodies = dataset_requests(lab, capability, dataset, labels=labels)
    total = count or len(bodies)
    columns = ("sending", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    quiet = json_out or not console.is_terminal  # a bar is for people at a terminal
    bar = Progress(*columns, console=console, transient=True, disable=quiet)
    with bar:
        task = bar.add_task("requests", total=total)
        summary, failed = send_traffic(
            base,
            capability,
            bodies,
            count=total,
            timeout=timeout,
            on_answer=lambda n: bar.update(task, completed=n),
        )
    if json_out:
        print_json({**summary.to_record(), "dataset": shown})
    else:
        _print_traffic(summary, shown)
    if failed is not None:
        raise failed


def _print_traffic(summary: TrafficSummary, dataset: str) -> None:
    def ms(q: float) -> str:
        value = summary.percentile(q)
        return "-" if value is None else f"{1000 * value:.1f} ms"

    def counts(c: Mapping[str, int]) -> str:
        return ", ".join(f"{short_ids(k)} {n}" for k, n in sorted(c.items())) or "-"

    console.print(
        f"sent {summary.sent} request(s) from {dataset} to {summary.url}: "
        f"{summary.answered} answered, {summary.errors} failed",
        soft_wrap=True,
    )
    fields(
        ("answered by", counts(summary.roles)),
        ("packages", counts(summary.packages)),
        ("latency", f"p50 {ms(0.5)}, p95 {ms(0.95)} (round trip)"),
        *((("first error", summary.first_error),) if summary.first_error else ()),
    )


def promote(
    ctx: typer.Context,
    capability: Cap,
    package: Pkg,
    baking: Annotated[
        int,
        typer.Option(
            "--baking",
            min=0,
            max=365 * 86400,  # breedlab.release.state.MAX_BAKING (not imported: a fast start)
            help="Seconds servers keep the old champion loaded for a fast rollback.",
        ),
    ] = 3600,
    key: Key = None,
    json_out: JsonFlag = False,
) -> None:
    """Make PKG the champion (old one to previous) after shadow, canary and approvals.

    The first champion of a capability needs only the approvals its risk tier asks for.
    """
    from datetime import timedelta

    with open_lab(ctx) as lab:
        ev = lab.promote(capability, package, baking=timedelta(seconds=baking), key=key)
    if json_out:
        print_json({"seq": ev.seq, **dict(ev.payload)})
    else:
        previous = ev.payload["previous"] or "(none: the first champion)"
        console.print(
            f"promoted {ev.payload['package']} to {capability}@champion; previous is {previous}"
        )


def rollback(
    ctx: typer.Context, capability: Cap, key: Key = None, json_out: JsonFlag = False
) -> None:
    """Return champion to previous and record the measured recovery time.

    The switch is the signed alias move (a running server follows it on its next request,
    and records its own switch); the cold load is this process verifying and loading the
    restored champion and asking it one probe.
    """
    with open_lab(ctx) as lab:
        ev = lab.rollback(capability, key=key)
    rec = ev.payload["recovery"]
    assert isinstance(rec, dict)
    switch_s = float(str(rec["time_to_mitigate_s"]))
    load_s = float(str(rec["time_to_recover_s"])) - switch_s
    render(
        json_out,
        {"seq": ev.seq, **dict(ev.payload), "switch_s": switch_s, "cold_load_s": load_s},
        f"rolled back {capability}@champion to {ev.payload['package']} (seq {ev.seq})",
        f"  switch     {switch_s:.3f} s  (the signed alias move; servers follow it)",
        f"  cold load  {load_s:.3f} s  (verify, load and probe it in this process)",
    )


def exit_criteria(
    ctx: typer.Context,
    capability: Cap,
    workers: Annotated[int | None, typer.Option("--workers", help="Sandbox jobs.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """The seed's v1 exit criteria, pass/fail with evidence; exits non-zero if any fails."""
    with open_lab(ctx) as lab, progress(json_out, f"checking the exit criteria of {capability}"):
        results = lab.exit_criteria(capability, workers=workers)
    t = table("criterion", "result", "evidence", title="v1 exit criteria")
    for c in results:
        t.add_row(
            c.name,
            styled(("green", "pass")) if c.passed else styled(("red", "FAIL")),
            c.evidence,
        )
    render(json_out, [c.to_json() for c in results], t)
    if not all(c.passed for c in results):
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(shadow_app, name="shadow")
    app.add_typer(canary_app, name="canary")
    app.command("traffic")(traffic)
    app.command("promote")(promote)
    app.command("rollback")(rollback)
    app.command("exit-criteria")(exit_criteria)
