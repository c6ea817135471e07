"""Registry commands: capability, import, packages, show, sign, approve, revoke, verify,
lineage, reconstruct (seed, stages 0-1)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from breedlab.cli.shell import (
    CapabilityArg,
    JsonFlag,
    PackageArg,
    ReasonOpt,
    comma_list,
    console,
    fields,
    open_lab,
    print_json,
    progress,
    render,
    short_id,
    short_ids,
    styled,
    table,
    when,
)
from breedlab.errors import IntegrityError

if TYPE_CHECKING:  # the lab loads lazily: `breedlab --help` starts fast
    from breedlab.lab import PackageInfo
    from breedlab.supply.values import ReleaseRecord

__all__ = ["register"]

FullFlag = Annotated[bool, typer.Option("--full", help="Ids in full (default: 12 digits).")]
capability_app = typer.Typer(help="Capability contracts (stage 0).", no_args_is_help=True)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _print_info(info: PackageInfo, verb: str) -> None:
    m = info.manifest
    console.print(
        styled(
            f"{verb} ",
            ("bold", f"{m.kind}"),
            f" {m.name} for {m.capability}: {info.id}\n",
            f"  {len(m.files)} file(s), {_size(m.total_size)}, license {m.license}, "
            f"data class {m.data_class}, risk tier {m.risk_tier}",
        )
    )


@capability_app.command("add")
def capability_add(
    ctx: typer.Context,
    contract: Annotated[
        str, typer.Argument(help="A contract .toml file, or a built-in contract's name (digits).")
    ],
    sign_with: Annotated[str | None, typer.Option("--sign-with", help="Sign with KEY.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Validate a capability contract and register it as a package."""
    from breedlab.capabilities import resolve_contract

    with open_lab(ctx) as lab:
        info = lab.add_capability(resolve_contract(contract), sign_with=sign_with)
    if json_out:
        print_json(info.to_json())
    else:
        _print_info(info, "registered" if info.created else "already registered:")


@capability_app.command("init")
def capability_init(
    name: CapabilityArg,
    task: Annotated[str, typer.Option("--task", help="The task: classification.")],
    modality: Annotated[str, typer.Option("--modality", help="tabular | text | image")],
    labels: Annotated[
        str | None, typer.Option("--labels", help="The class labels: a,b,... (else a blank).")
    ] = None,
    features: Annotated[
        str | None,
        typer.Option("--features", help="Tabular: the feature names f1,f2,... (else a blank)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="The file to write (default: NAME.toml here).")
    ] = None,
    table: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A data file (.csv, .jsonl, .parquet): labels and tabular features not "
            "given are read from it.",
        ),
    ] = None,
    label_column: Annotated[
        str, typer.Option("--label-column", help="With --from: the label's column.")
    ] = "label",
    id_column: Annotated[
        str | None, typer.Option("--id-column", help="With --from: a column that is no feature.")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Write a commented contract TOML to edit, then 'capability add' it (never overwrites)."""
    from breedlab.lab import Lab

    path = Lab.init_contract(
        out or Path(f"{name}.toml"),
        name,
        task=task,
        modality=modality,
        labels=comma_list(labels),
        features=comma_list(features),
        table=table,
        label_column=label_column,
        ignore=() if id_column is None else (id_column,),
    )
    render(
        json_out,
        {"contract": str(path), "name": name},
        f"wrote {path}: fill in what it marks FILL IN, then: breedlab capability add {path}",
    )


@capability_app.command("show")
def capability_show(
    ctx: typer.Context,
    name: CapabilityArg,
    full: FullFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Show a capability's current contract (--json for the contract itself)."""
    with open_lab(ctx, read_only=True) as lab:
        info, contract = lab.capability(name)
    if json_out:
        print_json({"package": str(info.id), "contract": contract.to_json()})
        return
    c, b, o = contract, contract.budget, contract.owners
    console.print(styled(("bold", f"{c.name}"), f" ({c.task}) — {c.description}"))
    fields(
        ("package", str(info.id) if full else short_id(info.id)),
        ("data class", f"{c.data_class}, risk tier {c.risk_tier}"),
        ("labels", ", ".join(c.labels)),
        ("input", _pairs(c.input_schema)),
        ("output", _pairs(c.output_schema)),
        ("baseline", _pairs(c.baseline)),
        (
            "budget",
            f"latency p95 {b.latency_p95_ms} ms, memory {b.memory_mib} MiB, size {b.size_mib} MiB",
        ),
        (
            "owners",
            f"model {o.model}, evaluation {o.evaluation}, security {o.security}, "
            f"production {o.production}",
        ),
        ("operators", ", ".join(c.allowed_operators)),
    )


def _pairs(mapping: Mapping[str, object]) -> str:
    """``key value`` pairs for people (``--json`` has the structure)."""
    return ", ".join(
        f"{k} {' x '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in mapping.items()
    )


def import_package(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A file or folder to import.")],
    kind: Annotated[str, typer.Option("--kind", help="model | adapter | dataset | suite")],
    capability: Annotated[str, typer.Option("--capability", help="The capability it serves.")],
    license: Annotated[str, typer.Option("--license", help="SPDX license identifier.")],
    data_class: Annotated[
        str | None,
        typer.Option("--data-class", help="public | internal | confidential | restricted."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Package name.")] = None,
    parent: Annotated[
        list[str] | None,
        typer.Option("--parent", help="A package it was made from (repeatable)."),
    ] = None,
    sign_with: Annotated[str | None, typer.Option("--sign-with", help="Sign with KEY.")] = None,
    family: Annotated[
        str | None,
        typer.Option(
            "--family",
            help="A model's family: torch | transformers (default: what its config.json "
            "declares). A model is loaded and probed against its capability's contract.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the id (for ID=$(...)).")
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Import files as a content-addressed package (checked fully before anything is written)."""
    with open_lab(ctx) as lab:
        info = lab.import_path(
            path,
            kind=kind,
            capability=capability,
            license=license,
            data_class=data_class,
            name=name,
            sign_with=sign_with,
            parents=tuple(parent or ()),
            family=family,
        )
    if json_out:
        print_json(info.to_json())
    elif quiet:
        console.print(str(info.id))
    else:
        _print_info(info, "imported" if info.created else "already stored:")


def packages(
    ctx: typer.Context,
    capability: Annotated[str | None, typer.Option("--capability", help="Only this one.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """List registered packages."""
    with open_lab(ctx, read_only=True) as lab:
        infos = lab.packages(capability=capability)
        aliases: dict[str, list[str]] = {}
        for info in infos:
            for a in lab.show(str(info.id)).aliases:
                aliases.setdefault(str(info.id), []).append(a.split("@", 1)[1])
    t = table("id", "kind", "name", "capability", "size", "aliases")
    for i in infos:
        m = i.manifest
        t.add_row(
            short_id(i.id),
            m.kind,
            m.name,
            m.capability,
            _size(m.total_size),
            ", ".join(aliases.get(str(i.id), [])),
        )
    render(json_out, [i.to_json() for i in infos], t)


def show(
    ctx: typer.Context,
    package: PackageArg,
    full: FullFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Show a package: manifest, signatures, approvals, aliases, lineage."""
    with open_lab(ctx, read_only=True) as lab:
        d = lab.show(package)
        cap = d.info.manifest.capability
        release = {f"{cap}@shadow", f"{cap}@canary"} & set(d.aliases)
        stale = {  # a shadow/canary alias whose run ended (promoted, rolled back, stopped)
            f"{cap}@{alias}": why
            for alias, why in (lab.stale_release_aliases(cap) if release else {}).items()
            if f"{cap}@{alias}" in release
        }
    if json_out:
        print_json({**d.to_json(), "stale_aliases": stale})
        return
    m = d.info.manifest
    ident = str if full else short_id
    console.print(styled(("bold", f"{m.name}"), f" ({m.kind}, capability {m.capability})"))
    approvals = ", ".join(
        f"{a.purpose}{' for ' + ' '.join(a.clusters) if a.clusters else ''} by {a.key} ({a.role})"
        for a in d.approvals
    )
    shown = [f"{a} (stale: {stale[a]})" if a in stale else a for a in d.aliases]
    fields(
        ("id", ident(d.info.id)),
        ("license", f"{m.license}, data class {m.data_class}, risk tier {m.risk_tier}"),
        ("provenance", ident(m.provenance) if m.provenance else "-"),
        ("parents", ", ".join(ident(p) for p in m.parents) or "-"),
        ("children", ", ".join(ident(c) for c in d.children) or "-"),
        ("signed by", ", ".join(d.signed_by) or "- (unsigned)"),
        ("approvals", approvals or "-"),
        ("aliases", ", ".join(shown) or "-"),
    )
    if d.revoked:
        console.print(styled("  ", ("bold red", "REVOKED"), f"  {d.revoked}"))
    t = table("path", "size", "sha256")
    for f in m.files:
        t.add_row(f.path, _size(f.size), f.sha256[:16])
    console.print(t)
    if d.release:
        r = table("seq", "at", "release evidence", "sealed blobs", title="release")
        for rec in d.release:
            blobs = ", ".join(e[7:19] for e in rec.evidence) or "-"
            r.add_row(str(rec.seq), when(rec.at), short_ids(rec.summary), blobs)
        console.print(r)


def sign(
    ctx: typer.Context,
    package: PackageArg,
    key: Annotated[str, typer.Option("--key", help="A trusted key of this lab.")],
    json_out: JsonFlag = False,
) -> None:
    """Sign a package (a DSSE envelope over an in-toto statement naming it)."""
    with open_lab(ctx) as lab:
        info = lab.sign(package, key=key)
    render(
        json_out, info.to_json(), f"signed {info.id.short} ({info.manifest.name}) with key {key}"
    )


def approve(
    ctx: typer.Context,
    package: PackageArg,
    purpose: Annotated[str, typer.Option("--purpose", help="parent | release")],
    key: Annotated[str, typer.Option("--key", help="A trusted role key.")],
    clusters: Annotated[
        list[str] | None,
        typer.Option(
            "--cluster",
            help="Scope a parent approval to a failure cluster's key (repeatable; "
            "'breedlab failures CAP' shows the keys). Default: every round.",
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Approve a package for use as a parent or for release (a signed statement)."""
    with open_lab(ctx) as lab:
        a = lab.approve(package, purpose=purpose, key=key, clusters=clusters or ())
    scope = f", only for {', '.join(a.clusters)}" if a.clusters else ""
    render(
        json_out,
        a.to_json(),
        f"approved {a.package[:19]} for {a.purpose}{scope} by {a.key} ({a.role})",
    )


def revoke(
    ctx: typer.Context,
    package: PackageArg,
    reason: ReasonOpt,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="A lab, security or production key that signs it (default: the lab key).",
            show_default=False,
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Revoke a package: it can no longer be a parent, champion or release target."""
    with open_lab(ctx) as lab:
        info = lab.revoke(package, reason=reason, key=key)
    render(json_out, info.to_json(), f"revoked {info.id.short} ({info.manifest.name}): {reason}")


def verify(
    ctx: typer.Context,
    packages: Annotated[list[str] | None, typer.Argument(help="Packages (default: all).")] = None,
    all_: Annotated[
        bool,
        typer.Option("--all", help="Also re-hash every object in the store and the ledger."),
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Re-hash files, check manifests, signatures, revocations (and with --all, everything)."""
    with open_lab(ctx) as lab, progress(json_out, "verifying"):
        results = lab.verify(packages or ())
        store = evidence = ledger = ledger_problem = None
        if all_:
            store = lab.verify_store()
            evidence = lab.verify_evidence()
            try:
                ledger = lab.verify_ledger()
            except IntegrityError as e:
                ledger_problem = e.message
    failed = [r for r in results if not r.ok]
    ok = (
        not failed
        and (store is None or not store.problems)
        and (evidence is None or not evidence.problems)
        and ledger_problem is None
    )
    if json_out:
        print_json(
            {
                "ok": ok,
                "packages": [r.to_json() for r in results],
                "store": None if store is None else store.to_json(),
                "evidence": None if evidence is None else evidence.to_json(),
                "ledger": {
                    "ok": ledger_problem is None,
                    "problem": ledger_problem,
                    "report": None if ledger is None else ledger.to_json(),
                },
            }
        )
    else:
        for r in results:
            if r.ok:
                signed = f"signed by {', '.join(r.signed_by)}" if r.signed_by else "unsigned"
                console.print(
                    styled(
                        ("green", "ok"),
                        f"    {r.package[:19]} {r.name} ({r.files} files, {signed})",
                    )
                )
            else:
                for p in r.problems:
                    console.print(
                        styled(
                            ("red", "FAIL"), f"  {r.package[:19]} {r.name}: {p.where}: {p.message}"
                        )
                    )
        if store is not None:
            for p in store.problems:
                console.print(styled(("red", "FAIL"), f"  store: {p.where}: {p.message}"))
            for p in store.cleaned:
                console.print(styled(("yellow", "note"), f"  store: {p.where}: {p.message}"))
            console.print(f"store: {store.objects} objects, {_size(store.bytes)} re-hashed")
        if evidence is not None:
            for p in evidence.problems:
                console.print(
                    styled(("red", "FAIL"), f"  release evidence: {p.where}: {p.message}")
                )
            console.print(f"release evidence: {evidence.segments} sealed segment(s) re-hashed")
        if ledger is not None:
            console.print(
                f"ledger: {ledger.events} events chained, "
                f"{len(ledger.checkpoints)} checkpoint(s) verified"
            )
        if ledger_problem is not None:
            console.print(styled(("red", "FAIL"), f"  ledger: {ledger_problem}"))
        console.print(
            styled(("bold green", "verified"))
            if ok
            else styled(("bold red", "verification failed"))
        )
    if not ok:
        raise typer.Exit(5)


def lineage(
    ctx: typer.Context,
    package: PackageArg,
    json_out: JsonFlag = False,
    dot: Annotated[bool, typer.Option("--dot", help="Print Graphviz DOT.")] = False,
) -> None:
    """Show where a package came from (ancestors) and what was bred from it."""
    with open_lab(ctx, read_only=True) as lab:
        graph = lab.lineage(package)
    if json_out:
        print_json(graph.to_json())
        return
    if dot:
        typer.echo(graph.to_dot(), nl=False)
        return
    console.print(styled(("bold", "ancestors"), " (the package first)"))
    for node in graph.ancestors:
        parents = ", ".join(p[:19] for p in node.parents) or "(source)"
        console.print(f"  {node.id[:19]} {node.name} [{node.kind}, {node.build_type}] <- {parents}")
        _release_lines(node.release)
    console.print(styled(("bold", "descendants")))
    for node in graph.descendants:
        console.print(f"  {node.id[:19]} {node.name} [{node.kind}, {node.build_type}]")
        _release_lines(node.release)
    if not graph.descendants:
        console.print("  (none)")


def _release_lines(records: tuple[ReleaseRecord, ...]) -> None:
    for rec in records:
        sealed = f" [{len(rec.evidence)} sealed blob(s)]" if rec.evidence else ""
        console.print(f"      seq {rec.seq}: {rec.summary}{sealed}", soft_wrap=True)


def reconstruct(
    ctx: typer.Context,
    package: PackageArg,
    out: Annotated[Path | None, typer.Option("--out", help="A new folder to rebuild into.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Rebuild a package's folder from the store and re-derive its id from the files."""
    with open_lab(ctx) as lab, progress(json_out, f"rebuilding {package} from the store"):
        rec = lab.reconstruct(package, out=out)
    verdict = ("green", "ids match") if rec.match else ("red", "ids DIFFER")
    render(
        json_out,
        rec.to_json(),
        f"rebuilt {rec.files} file(s) into {rec.folder}",
        f"  recorded   {rec.package}\n  recomputed {rec.recomputed}",
        styled("  ", verdict),
    )
    if not rec.match:
        raise typer.Exit(5)


def register(app: typer.Typer) -> None:
    app.add_typer(capability_app, name="capability")
    app.command("import")(import_package)
    app.command("packages")(packages)
    app.command("show")(show)
    app.command("sign")(sign)
    app.command("approve")(approve)
    app.command("revoke")(revoke)
    app.command("verify")(verify)
    app.command("lineage")(lineage)
    app.command("reconstruct")(reconstruct)
