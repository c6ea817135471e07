"""The Lab: the one library API. It builds the components from the lab's config and
joins them; the CLI and (later) the HTTP app are thin shells over it.

Controllers here follow read → decide → write: read the ledger and the store, check the
rules, then write blobs first and the ledger event last. A crash between the two leaves
unreferenced blobs (harmless, content-addressed), never a ledger entry that points at
something missing.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from breedlab import canonical, interrupts
from breedlab.authority import RULES, may, replay
from breedlab.authority.replay import check_pinned
from breedlab.canonical import JsonValue
from breedlab.clock import Clock, SystemClock
from breedlab.config import CONFIG_NAME, LabConfig, default_config_text, load_config
from breedlab.digest import Digest, parse_prefix
from breedlab.errors import (
    ChainBroken,
    Conflict,
    IntegrityError,
    Interrupted,
    InvalidRequest,
    LabError,
    NotFound,
    PolicyError,
    UnauthorizedChange,
)
from breedlab.lab.conformance import (
    check_answers_contract,
    check_registered_model,
    declared_family,
)
from breedlab.lab.values import (
    AliasMove,
    ApprovalInfo,
    EvidenceReport,
    KeyInfo,
    LedgerReport,
    LineageGraph,
    LineageNode,
    PackageDetails,
    PackageInfo,
    Problem,
    Reconstruction,
    StoreReport,
    VerifyResult,
)
from breedlab.lab.verification import (
    CHECKPOINT_PAYLOAD_TYPE,
    KEY_PAYLOAD_TYPE,
    check_checkpoints,
    check_key_endorsements,
    check_package,
    checkpoint_payload,
    key_endorsements,
    key_statement,
    trusted_keys,
)
from breedlab.lab.witness import Witness, check_witness
from breedlab.lab.workspace import Workspace, discard
from breedlab.ledger import Event, KeyRecord, Ledger, Reader
from breedlab.ledger.merkle import Frontier
from breedlab.ledger.merkle import root as merkle_root
from breedlab.registry import source
from breedlab.registry.blobs import BlobStore, Leftover
from breedlab.registry.capability import Contract, parse_contract
from breedlab.registry.licenses import check_license
from breedlab.registry.manifest import DataClass, FileEntry, Kind, Manifest, RiskTier
from breedlab.registry.stores import open_blob_store
from breedlab.signing import dsse
from breedlab.signing.keys import KeyPair, Role, check_key_name, load_keypair
from breedlab.signing.statements import (
    APPROVAL_PREDICATE,
    INTOTO_PAYLOAD_TYPE,
    SIGNATURE_PREDICATE,
    SLSA_PREDICATE,
    Statement,
    Subject,
    provenance_predicate,
)

if TYPE_CHECKING:  # the challenger loop pulls in numpy and scipy: imported when used
    from breedlab.lab.breeding import RoundResult
    from breedlab.lab.builtin import Bootstrap
    from breedlab.lab.failures import Cluster
    from breedlab.lab.migration import MigrationReport
    from breedlab.lab.release import Criterion
    from breedlab.lab.replay import Reproduction
    from breedlab.ledger.engine import Txn
    from breedlab.release.canary import ExposureCap
    from breedlab.release.shadow_stats import ShadowReport
    from breedlab.sandbox.executors import Executor

__all__ = ["PURPOSES", "Lab"]

PURPOSES = ("parent", "release")
_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,63}")
#: Aliases with a release meaning: their targets must be models of the capability.
RELEASE_ALIASES = ("champion", "previous", "shadow", "canary")
#: Moved only by promotion and rollback (DESIGN §13).
CHAMPION_ALIASES = ("champion", "previous")


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _interruptible(
    command: Callable[Concatenate[Lab, _P], _R],
) -> Callable[Concatenate[Lab, _P], _R]:
    """A long command: SIGINT or SIGTERM stops it at its next safe point
    (``breedlab.interrupts``), and the error names the last event recorded."""

    @functools.wraps(command)
    def run(lab: Lab, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with interrupts.stop_on_signals() as outermost:
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


class Lab:
    """A breedlab lab on disk (embedded default: files + SQLite)."""

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
        self.ledger.after_commit = self._after_commit
        self.workspace = Workspace(config.work_dir, self.blobs)
        self._unanchored = False  # this Lab appended events no checkpoint covers yet
        self._frontier: Frontier | None = None  # the tree its last checkpoint signed
        self._checkpoint_lock = threading.Lock()
        #: Temporary files of interrupted writes removed by open (reported by verify_store).
        self._leftovers: tuple[Leftover, ...] = ()

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
        path = path.resolve()
        if (path / CONFIG_NAME).exists():
            raise Conflict(f"a lab exists already at {path}")
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise InvalidRequest(f"{path} exists and is not an empty folder")
        path.mkdir(parents=True, exist_ok=True)
        for folder in ("objects", "keys", "work"):
            (path / folder).mkdir(exist_ok=True)
        os.chmod(path / "keys", 0o700)
        # The lab key first, so its id is pinned in the config from the start.
        lab_key = KeyPair.generate("lab")
        text = default_config_text(name or path.name, lab_key_id=lab_key.keyid)
        (path / CONFIG_NAME).write_text(text, "utf-8")
        lab = cls(load_config(path), clock=clock)
        lab.blobs.ensure()
        lab.ledger.create()
        lab._add_key(lab_key, Role.LAB)
        lab.generate_key(lab.config.factory_key, Role.FACTORY)
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
        lab._leftovers = lab._clean_temporary()
        return lab

    def _clean_temporary(self) -> tuple[Leftover, ...]:
        try:
            return (*self.blobs.clean_temporary(), *self.workspace.clean_leftovers())
        except OSError:  # a lab this user may read but not write: leave it be
            return ()

    def close(self) -> None:
        """Sign a checkpoint over what this Lab appended (DESIGN §13: checkpoints are
        automatic), then release the database."""
        try:
            if self._unanchored:
                self._auto_checkpoint()
        finally:
            self.ledger.close()

    def _after_commit(self, events: Sequence[Event]) -> None:
        if all(e.kind == "checkpoint.signed" for e in events):
            return
        self._unanchored = True
        every = self.config.checkpoint_every
        if every:
            with self.ledger.reader() as r:
                covered = r.last_checkpoint_size()
            if events[-1].seq - covered >= every:
                self._auto_checkpoint()

    def _auto_checkpoint(self) -> None:
        """A checkpoint when the lab key is at hand; a process without it (a server
        holding only the factory key) leaves the next one to a process that has it."""
        with self._checkpoint_lock:
            with self.ledger.reader() as r:
                if r.head()[0] == 0 or r.last_event_kind() == "checkpoint.signed":
                    self._unanchored = False
                    return
            try:
                self.checkpoint()
            except (NotFound, PolicyError):
                return
            self._unanchored = False

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def actor(self) -> str:
        return self.config.who

    # -- keys ----------------------------------------------------------------------------

    def generate_key(self, name: str, role: Role | str) -> KeyInfo:
        """Generate an Ed25519 key, store it (private 0600) and trust it in the ledger.

        Raises:
            Conflict: a key with that name exists.
        """
        role = Role.parse(role) if isinstance(role, str) else role
        check_key_name(name)
        return self._add_key(KeyPair.generate(name), role)

    def _add_key(self, keypair: KeyPair, role: Role) -> KeyInfo:
        """Save ``keypair`` and trust it: a ``key.added`` event, endorsed and signed by
        the lab key (the lab's first key signs its own)."""
        name = keypair.name
        with self.ledger.reader() as r:
            if r.key(name) is not None:
                raise Conflict(f"key {name!r} is registered already")
            first = not r.all_keys()
            endorser = keypair if first else self._endorser(r)
        if first and role is not Role.LAB:
            raise PolicyError("a lab's first key has role 'lab': it endorses every later key")
        envelope = self._endorsement(
            keypair.keyid, keypair.public_raw.hex(), name, role.value, endorser
        )
        private, public = keypair.save(self.config.keys_dir)
        try:
            self.ledger.append(
                "key.added",
                name,
                {
                    "name": name,
                    "role": role.value,
                    "keyid": keypair.keyid,
                    "public_key": keypair.public_raw.hex(),
                    "endorsement": str(envelope),
                    "endorser": endorser.keyid,
                },
                signer=endorser,
                actor=self.actor,
            )
        except LabError:
            private.unlink(missing_ok=True)
            public.unlink(missing_ok=True)
            raise
        return self.key(name)

    def key(self, name: str) -> KeyInfo:
        with self.ledger.reader() as r:
            row = r.key(name)
            endorsed = self._endorsed(r)
        if row is None:
            raise NotFound(f"no key named {name!r}; see 'breedlab keys list'")
        return self._key_info(row, endorsed)

    def _endorsed(self, r: Reader) -> set[str]:
        keys, _ = key_endorsements(self.blobs, r)
        return {k.keyid for k in keys.values() if k.endorsed_seq is not None}

    def _key_info(self, row: KeyRecord, endorsed: set[str]) -> KeyInfo:
        return KeyInfo(
            endorsed=row.keyid in endorsed,
            name=row.name,
            role=row.role,
            keyid=row.keyid,
            added_seq=row.added_seq,
            revoked_seq=row.revoked_seq,
            revoked_reason=row.revoked_reason,
            has_private=(self.config.keys_dir / f"{row.name}.key").exists(),
        )

    def keys(self) -> list[KeyInfo]:
        with self.ledger.reader() as r:
            endorsed = self._endorsed(r)
            return [self._key_info(row, endorsed) for row in r.all_keys()]

    def revoke_key(self, name: str, reason: str) -> KeyInfo:
        """Revoke a key: from now on nothing it signed verifies.

        Raises:
            NotFound, Conflict (revoked already), InvalidRequest (empty reason).
        """
        _require_reason(reason)
        info = self.key(name)
        if info.revoked_seq is not None:
            raise Conflict(f"key {name!r} was revoked already (seq {info.revoked_seq})")
        with self.ledger.reader() as r:
            lab_key = self._endorser(r)
        self.ledger.append(
            "key.revoked",
            name,
            {"name": name, "keyid": info.keyid, "reason": reason},
            signer=lab_key,
            actor=self.actor,
        )
        return self.key(name)

    def _endorser(self, r: Reader) -> KeyPair:
        """The lab key that endorses new keys (``[signing] checkpoint_key``)."""
        name = self.config.checkpoint_key
        try:
            keypair, role = self._signer(name, r)
        except NotFound:
            raise PolicyError(
                f"adding a trusted key needs the lab key {name!r} to endorse it, and its "
                "private key is not in this lab's keys folder"
            ) from None
        if role != Role.LAB.value:
            raise PolicyError(f"key {name!r} has role '{role}'; only a 'lab' key endorses keys")
        return keypair

    def _endorsement(
        self, keyid: str, public_hex: str, name: str, role: str, endorser: KeyPair
    ) -> Digest:
        statement = key_statement(name=name, role=role, keyid=keyid, public_key=public_hex)
        return self.blobs.put_bytes(dsse.sign(KEY_PAYLOAD_TYPE, statement, endorser).to_bytes())

    def endorse_keys(self, names: Sequence[str]) -> list[KeyInfo]:
        """Endorse keys that have no endorsement (added before endorsements existed) with
        the lab key, after checking each by hand: a key minted by a write to the ledger
        looks the same. The lab's first key endorses itself.

        Raises:
            NotFound: no such key. Conflict: endorsed already. PolicyError: revoked, or
                the lab key is not at hand.
        """
        done = []
        for name in names:
            with self.ledger.reader() as r:
                row = r.key(name)
                if row is None:
                    raise NotFound(f"no key named {name!r}")
                if row.revoked_seq is not None:
                    raise PolicyError(f"key {name!r} is revoked; endorse a new key instead")
                keys, _ = key_endorsements(self.blobs, r)
                state = keys[str(row.keyid)]
                if state.endorsed_seq is not None:
                    raise Conflict(f"key {name!r} is endorsed already (seq {state.endorsed_seq})")
                first = next(iter(keys)) == state.keyid
                endorser = load_keypair(self.config.keys_dir, name) if first else self._endorser(r)
            envelope = self._endorsement(state.keyid, state.public_key, name, state.role, endorser)
            self.ledger.append(
                "key.endorsed",
                name,
                {
                    "name": name,
                    "keyid": state.keyid,
                    "endorsement": str(envelope),
                    "endorser": endorser.keyid,
                },
                signer=endorser,
                actor=self.actor,
            )
            done.append(self.key(name))
        return done

    def _signer(self, name: str, r: Reader) -> tuple[KeyPair, str]:
        """Load a private key and check the lab trusts it; returns ``(keypair, role)``."""
        keypair = load_keypair(self.config.keys_dir, name)
        row = r.key_by_id(keypair.keyid)
        if row is None:
            raise PolicyError(f"key {name!r} is not trusted by this lab (not in its ledger)")
        if row.revoked_seq is not None:
            raise PolicyError(f"key {name!r} was revoked: {row.revoked_reason}")
        if str(row.keyid) not in self._endorsed(r):
            raise PolicyError(
                f"key {name!r} is not endorsed by the lab key; check it, then "
                f"'breedlab keys endorse {name}'"
            )
        return keypair, str(row.role)

    def _acting(self, name: str, r: Reader, kind: str) -> KeyPair:
        """A trusted key that the authority table lets sign ``kind`` events, loaded."""
        keypair, role = self._signer(name, r)
        if not may(Role(role), kind):
            allowed = (
                ", ".join(sorted(x.value for x in RULES[kind].roles)) if kind in RULES else "-"
            )
            raise PolicyError(
                f"key {name!r} has role '{role}'; {kind} needs a key of role {allowed}"
            )
        return keypair

    def factory_signer(self) -> KeyPair:
        """The lab's automation key (``[signing] factory_key``, role ``factory``): it signs
        what operators make and what rounds and the serving controller record.

        Raises:
            PolicyError: the key is missing, untrusted, or not of role ``factory``.
        """
        name = self.config.factory_key
        with self.ledger.reader() as r:
            try:
                return self._acting(name, r, "candidate.generated")
            except NotFound:
                raise PolicyError(
                    f"the lab's factory key {name!r} is not in {self.config.keys_dir} (a lab "
                    "from before signed events: run 'breedlab ledger sign-history')"
                ) from None

    def release_signer(self, key: str | None, kind: str = "release.promoted") -> KeyPair:
        """The ``production`` key that signs a release action: ``key``, else
        ``[signing] release_key``.

        Raises:
            PolicyError: none named, or the key may not make ``kind`` changes.
            NotFound: no such private key in this lab.
        """
        name = key or self.config.release_key
        if not name:
            raise PolicyError(
                "a release action is signed by a 'production' key: pass --key NAME, or set "
                "[signing] release_key in breedlab.toml"
            )
        with self.ledger.reader() as r:
            return self._acting(name, r, kind)

    def _lab_signer(self, r: Reader) -> KeyPair:
        """The lab key, for the registry's own records when no key is named."""
        return self._endorser(r)

    # -- capabilities ----------------------------------------------------------------------

    def add_capability(self, path: Path, *, sign_with: str | None = None) -> PackageInfo:
        """Validate a capability contract (TOML) and register it as a package."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no such file: {path}") from None
        except IsADirectoryError:
            raise InvalidRequest(f"{path} is a folder; pass the contract's .toml file") from None
        contract = parse_contract(data, str(path))
        return self._register(
            files=[(("capability.toml"), data)],
            kind=Kind.CAPABILITY,
            name=contract.name,
            capability=contract.name,
            license="CC0-1.0",
            data_class=contract.data_class,
            risk_tier=contract.risk_tier,
            build_type="import",
            external={"source": "capability.toml"},
            meta={"contract": contract.to_json()},
            sign_with=sign_with,
        )

    def capability(self, name: str) -> tuple[PackageInfo, Contract]:
        """The current contract of a capability (its latest registered version)."""
        with self.ledger.reader() as r:
            rows = r.packages(capability=name, kind=Kind.CAPABILITY.value)
        if not rows:
            raise NotFound(f"no capability {name!r}; add one with 'breedlab capability add FILE'")
        info = self.package(Digest.parse(rows[-1].id))
        data = self.blobs.get_bytes(info.manifest.files[0].digest)
        return info, parse_contract(data, f"{name} ({info.id.short})")

    def capabilities(self) -> list[PackageInfo]:
        with self.ledger.reader() as r:
            rows = r.packages(kind=Kind.CAPABILITY.value)
        latest = {row.capability: row.id for row in rows}
        return [self.package(Digest.parse(pid)) for pid in latest.values()]

    # -- packages ------------------------------------------------------------------------

    def import_path(
        self,
        path: Path,
        *,
        kind: Kind | str,
        capability: str,
        license: str,
        data_class: DataClass | str | None = None,
        name: str | None = None,
        sign_with: str | None = None,
        family: str | None = None,
        parents: Sequence[str] = (),
    ) -> PackageInfo:
        """Import a file or folder as a package (stage 1: content-addressed, write-once).

        ``parents`` (ids, prefixes or aliases) record what it was made from, e.g. the
        dataset a model was trained on outside the lab.

        Everything is checked before anything is written. Re-importing identical content
        returns the same id and writes nothing new.

        Raises:
            InvalidRequest: refused source (traversal, pickle, empty), bad kind or license.
            NotFound: no such path or capability.
            PolicyError: the signing key is untrusted or revoked.
            IntegrityError: a model that does not load or does not answer the capability's
                contract (``lab.conformance``); InvalidRequest if it names no family and
                its ``config.json`` declares none.
        """
        kind = Kind.parse(kind) if isinstance(kind, str) else kind
        if kind is Kind.CAPABILITY:
            raise InvalidRequest("import a capability contract with 'breedlab capability add FILE'")
        spdx = check_license(license)
        _, contract = self.capability(capability)
        if data_class is None:
            klass = contract.data_class
        else:
            klass = DataClass.parse(data_class) if isinstance(data_class, str) else data_class
        parent_ids = [self.resolve(p) for p in parents]
        files = source.scan(path)
        if kind is Kind.MODEL:
            family = family or declared_family(path)

        def answers_contract(manifest: Manifest) -> None:
            # The stored bytes are probed (not the source, which may change meanwhile).
            if manifest.kind is Kind.MODEL:
                folder = self.workspace.materialise(manifest.id, manifest)
                check_answers_contract(folder, manifest.family, contract, what=f"model {path}")

        return self._register(
            files=files,
            kind=kind,
            name=name or _default_name(path),
            capability=capability,
            license=spdx,
            data_class=klass,
            risk_tier=contract.risk_tier,
            build_type="import",
            external={"kind": kind.value, "license": spdx, "data_class": klass.value},
            parents=parent_ids,
            family=family,
            sign_with=sign_with,
            check=answers_contract,
        )

    def _register(
        self,
        *,
        files: Sequence[source.SourceFile] | Sequence[tuple[str, bytes]],
        kind: Kind,
        name: str,
        capability: str,
        license: str,
        data_class: DataClass,
        risk_tier: RiskTier,
        build_type: str,
        external: dict[str, JsonValue],
        parents: Sequence[Digest] = (),
        dependencies: Sequence[tuple[str, Digest]] = (),
        family: str | None = None,
        meta: dict[str, JsonValue] | None = None,
        sign_with: str | None = None,
        check: Callable[[Manifest], None] | None = None,
    ) -> PackageInfo:
        """Store a package and record it; ``check`` sees the stored manifest before it is
        recorded (a refusal leaves only unreferenced blobs: the package does not exist)."""
        signer: KeyPair | None = None
        with self.ledger.reader() as r:
            if sign_with is not None:
                signer, _ = self._signer(sign_with, r)
            registrar = signer or self._lab_signer(r)
        manifest = self._store_package(
            files=files,
            kind=kind,
            name=name,
            capability=capability,
            license=license,
            data_class=data_class,
            risk_tier=risk_tier,
            build_type=build_type,
            external=external,
            parents=parents,
            dependencies=dependencies,
            family=family,
            meta=meta,
        )
        if check is not None:
            check(manifest)
        return self._record_package(manifest, signer, registrar=registrar)

    def _store_package(
        self,
        *,
        files: Sequence[source.SourceFile] | Sequence[tuple[str, bytes]],
        kind: Kind,
        name: str,
        capability: str,
        license: str,
        data_class: DataClass,
        risk_tier: RiskTier,
        build_type: str,
        external: dict[str, JsonValue],
        parents: Sequence[Digest] = (),
        dependencies: Sequence[tuple[str, Digest]] = (),
        family: str | None = None,
        meta: dict[str, JsonValue] | None = None,
    ) -> Manifest:
        """Store a package's files, provenance and manifest as blobs (idempotent); the
        ledger is not touched, so a package stored but never recorded does not exist."""
        entries = [self._store_file(f) for f in files]
        entries.sort(key=lambda e: e.path)
        resolved = [Subject(name="parent", sha256=p.hex) for p in parents]
        resolved += [Subject(name=label, sha256=d.hex) for label, d in dependencies]
        statement = Statement(
            subjects=tuple(Subject(name=e.path, sha256=e.sha256) for e in entries),
            predicate_type=SLSA_PREDICATE,
            predicate=provenance_predicate(
                build_type=build_type,
                external_parameters={"name": name, "capability": capability, **external},
                resolved_dependencies=resolved,
            ),
        )
        provenance = self.blobs.put_bytes(statement.to_bytes())
        manifest = Manifest(
            kind=kind,
            name=name,
            capability=capability,
            license=license,
            data_class=data_class,
            risk_tier=risk_tier,
            files=tuple(entries),
            parents=tuple(parents),
            provenance=provenance,
            family=family,
            meta=meta or {},
        )
        self.blobs.put_bytes(manifest.to_bytes())
        return manifest

    def _record_package(
        self,
        manifest: Manifest,
        signer: KeyPair | None = None,
        *,
        registrar: KeyPair,
        about: Mapping[str, JsonValue] | None = None,
    ) -> PackageInfo:
        """Register a stored manifest in the ledger (and sign it), in one transaction.

        ``registrar`` signs the ``package.registered`` event; ``signer`` (if any) vouches
        for the package with a DSSE signature whose statement also carries ``about``
        (the factory names the round and operator that made it).
        """
        package = manifest.id
        envelope_digest = None
        if signer is not None:
            envelope_digest = self.blobs.put_bytes(
                self._signature_envelope(manifest, package, signer, about=about)
            )
        with self.ledger.transaction() as tx:
            row = tx.package(str(package))
            created = row is None
            if row is not None:
                seq = row.registered_seq
            else:
                for parent in manifest.parents:
                    if tx.package(str(parent)) is None:
                        raise NotFound(f"parent {parent} is not registered")
                    if (rev := tx.revocation(str(parent))) is not None:
                        raise PolicyError(f"parent {parent.short} is revoked: {rev.reason}")
                seq = tx.append(
                    "package.registered",
                    str(package),
                    {
                        "id": str(package),
                        "kind": manifest.kind.value,
                        "name": manifest.name,
                        "capability": manifest.capability,
                        "parents": [str(p) for p in manifest.parents],
                        "provenance": str(manifest.provenance),
                        "files": len(manifest.files),
                        "size": manifest.total_size,
                    },
                    signer=registrar,
                    actor=self.actor,
                ).seq
            if signer is not None and envelope_digest is not None:
                already = {s.keyid for s in tx.signatures(str(package))}
                if signer.keyid not in already:
                    self._append_signature(tx, package, signer, envelope_digest)
        return PackageInfo(id=package, manifest=manifest, registered_seq=seq, created=created)

    def _store_file(self, f: source.SourceFile | tuple[str, bytes]) -> FileEntry:
        if isinstance(f, tuple):
            path, data = f
            return FileEntry(path=path, sha256=self.blobs.put_bytes(data).hex, size=len(data))
        fd = source.open_source_file(f)
        with os.fdopen(fd, "rb", buffering=0) as stream:
            digest, size = self.blobs.put_stream(stream)
        return FileEntry(path=f.path, sha256=digest.hex, size=size)

    def _signature_envelope(
        self,
        manifest: Manifest,
        package: Digest,
        signer: KeyPair,
        *,
        about: Mapping[str, JsonValue] | None = None,
    ) -> bytes:
        statement = Statement(
            subjects=(Subject(name=manifest.name, sha256=package.hex),),
            predicate_type=SIGNATURE_PREDICATE,
            predicate={
                **(about or {}),
                "kind": manifest.kind.value,
                "capability": manifest.capability,
            },
        )
        return dsse.sign(INTOTO_PAYLOAD_TYPE, statement.to_bytes(), signer).to_bytes()

    def _append_signature(
        self, tx: Txn, package: Digest, signer: KeyPair, envelope: Digest
    ) -> Event:
        return tx.append(
            "package.signed",
            str(package),
            {
                "package": str(package),
                "key": signer.name,
                "keyid": signer.keyid,
                "envelope": str(envelope),
            },
            signer=signer,
            actor=self.actor,
        )

    def resolve(self, ref: str) -> Digest:
        """A package id from ``sha256:<hex>``, a unique prefix (≥ 4 hex) or ``CAP@alias``.

        Raises:
            NotFound: no such package or alias. InvalidRequest: an ambiguous prefix.
        """
        with self.ledger.reader() as r:
            return self._resolve(r, ref)

    def _resolve(self, r: Reader, ref: str) -> Digest:
        if "@" in ref:
            capability, _, alias = ref.partition("@")
            target = r.alias(capability, alias)
            if target is None:
                raise NotFound(f"alias {ref} is not set; see 'breedlab alias history {capability}'")
            return Digest.parse(target)
        prefix = parse_prefix(ref)
        matches = r.packages_with_prefix(prefix)
        if not matches:
            raise NotFound(f"no package {ref}; see 'breedlab packages'")
        if len(matches) > 1:
            shown = ", ".join(Digest.parse(m).short for m in matches[:5])
            raise InvalidRequest(f"package prefix {ref} is ambiguous ({shown}); type more digits")
        return Digest.parse(matches[0])

    def manifest(self, package: Digest) -> Manifest:
        return Manifest.from_bytes(self.blobs.get_bytes(package))

    def package(self, package: Digest | str) -> PackageInfo:
        pid = package if isinstance(package, Digest) else self.resolve(package)
        with self.ledger.reader() as r:
            row = r.package(str(pid))
        if row is None:
            raise NotFound(f"package {pid.short} is not registered")
        return PackageInfo(
            id=pid, manifest=self.manifest(pid), registered_seq=int(row.registered_seq)
        )

    def packages(self, *, capability: str | None = None) -> list[PackageInfo]:
        with self.ledger.reader() as r:
            rows = r.packages(capability=capability)
        return [
            PackageInfo(
                id=Digest.parse(row.id),
                manifest=self.manifest(Digest.parse(row.id)),
                registered_seq=int(row.registered_seq),
            )
            for row in rows
        ]

    def show(self, ref: str) -> PackageDetails:
        pid = self.resolve(ref)
        info = self.package(pid)
        with self.ledger.reader() as r:
            signed = []
            for row in r.signatures(str(pid)):
                key = r.key_by_id(row.keyid)
                signed.append(str(key.name) if key is not None else row.keyid[:12])
            approvals = tuple(
                ApprovalInfo(
                    package=str(pid),
                    purpose=str(row.purpose),
                    key=_name_of(r, row.keyid),
                    role=str(row.role),
                    seq=int(row.seq),
                )
                for row in r.approvals(str(pid))
            )
            aliases = tuple(f"{row.capability}@{row.name}" for row in r.aliases_of(str(pid)))
            revoked = r.revocation(str(pid))
            children = tuple(r.children(str(pid)))
        from breedlab.lab.release import release_records

        return PackageDetails(
            info=info,
            signed_by=tuple(signed),
            approvals=approvals,
            aliases=aliases,
            revoked=None if revoked is None else str(revoked.reason),
            children=children,
            release=release_records(self, [str(pid)])[str(pid)],
        )

    def sign(self, ref: str, *, key: str) -> PackageInfo:
        """Sign a registered, intact package with a trusted key (a DSSE envelope).

        Raises:
            PolicyError: untrusted or revoked key, or the package is revoked.
            IntegrityError: the package does not verify.
            Conflict: this key signed it already.
        """
        pid = self.resolve(ref)
        with self.ledger.reader() as r:
            signer, _ = self._signer(key, r)
            self._require_intact(r, pid)
            if signer.keyid in {s.keyid for s in r.signatures(str(pid))}:
                raise Conflict(f"key {key!r} signed {pid.short} already")
        manifest = self.manifest(pid)
        envelope = self.blobs.put_bytes(self._signature_envelope(manifest, pid, signer))
        with self.ledger.transaction() as tx:  # re-check: another writer may have won
            self._recheck(tx, pid, signer)
            if signer.keyid in {s.keyid for s in tx.signatures(str(pid))}:
                raise Conflict(f"key {key!r} signed {pid.short} already")
            self._append_signature(tx, pid, signer, envelope)
        return self.package(pid)

    @staticmethod
    def _recheck(tx: Txn, pid: Digest, signer: KeyPair) -> None:
        """Inside the writing transaction: the package and the key are still good."""
        if tx.revocation(str(pid)) is not None:
            raise PolicyError(f"package {pid.short} was revoked")
        row = tx.key_by_id(signer.keyid)
        if row is None or row.revoked_seq is not None:
            raise PolicyError(f"key {signer.name!r} was revoked")

    def _require_intact(self, r: Reader, pid: Digest) -> None:
        _, _, _, problems = check_package(self.blobs, r, pid)
        if problems:
            first = problems[0]
            if first.where == "revocation":
                raise PolicyError(f"package {pid.short} is revoked ({first.message})")
            raise IntegrityError(
                f"package {pid.short} does not verify: {first.where}: {first.message}"
            )

    def approve(self, ref: str, *, purpose: str, key: str) -> ApprovalInfo:
        """Record a signed approval of a package for a purpose (``parent`` or ``release``).

        Raises:
            InvalidRequest: unknown purpose; the ``lab`` key cannot approve.
            PolicyError: untrusted or revoked key; revoked package.
            IntegrityError: the package does not verify.
            Conflict: this key approved it for this purpose already.
        """
        if purpose not in PURPOSES:
            raise InvalidRequest(f"unknown purpose {purpose!r}; use parent or release")
        pid = self.resolve(ref)
        with self.ledger.reader() as r:
            signer, role = self._signer(key, r)
            if not may(Role(role), "package.approved"):
                raise InvalidRequest(
                    f"the {role} key does not approve (the lab key and the factory key act "
                    "for the lab itself); use a model, evaluation, security or production key"
                )
            self._require_intact(r, pid)
            for row in r.approvals(str(pid)):
                if row.keyid == signer.keyid and row.purpose == purpose:
                    raise Conflict(f"key {key!r} approved {pid.short} for {purpose} already")
        if purpose == "release":
            check_registered_model(self, pid)  # released means served: it must answer its contract
        manifest = self.manifest(pid)
        statement = Statement(
            subjects=(Subject(name=manifest.name, sha256=pid.hex),),
            predicate_type=APPROVAL_PREDICATE,
            predicate={"purpose": purpose, "role": role, "capability": manifest.capability},
        )
        envelope = self.blobs.put_bytes(
            dsse.sign(INTOTO_PAYLOAD_TYPE, statement.to_bytes(), signer).to_bytes()
        )
        with self.ledger.transaction() as tx:  # re-check: another writer may have won
            self._recheck(tx, pid, signer)
            for row in tx.approvals(str(pid)):
                if row.keyid == signer.keyid and row.purpose == purpose:
                    raise Conflict(f"key {key!r} approved {pid.short} for {purpose} already")
            ev = tx.append(
                "package.approved",
                str(pid),
                {
                    "package": str(pid),
                    "purpose": purpose,
                    "key": key,
                    "keyid": signer.keyid,
                    "role": role,
                    "envelope": str(envelope),
                },
                signer=signer,
                actor=self.actor,
            )
        return ApprovalInfo(package=str(pid), purpose=purpose, key=key, role=role, seq=ev.seq)

    def revoke(self, ref: str, *, reason: str, key: str | None = None) -> PackageInfo:
        """Revoke a package: it can no longer be a parent, champion or release target.

        Signed by ``key`` (a lab, security or production key; default: the lab key).
        """
        _require_reason(reason)
        pid = self.resolve(ref)
        with self.ledger.reader() as r:
            signer = self._lab_signer(r) if key is None else self._acting(key, r, "package.revoked")
        with self.ledger.transaction() as tx:
            if tx.package(str(pid)) is None:
                raise NotFound(f"package {pid.short} is not registered")
            if tx.revocation(str(pid)) is not None:
                raise Conflict(f"package {pid.short} was revoked already")
            tx.append(
                "package.revoked",
                str(pid),
                {"package": str(pid), "reason": reason},
                signer=signer,
                actor=self.actor,
            )
        return self.package(pid)

    # -- verification ----------------------------------------------------------------------

    def verify(self, refs: Iterable[str] = ()) -> list[VerifyResult]:
        """Verify the named packages (or every registered package if none are named)."""
        results = []
        with self.ledger.reader() as r:
            ids = [self._resolve(r, ref) for ref in refs]
            if not ids:
                ids = [Digest.parse(row.id) for row in r.packages()]
            trusted = trusted_keys(r, self.blobs)  # once, not per package
            for pid in ids:
                name, files, signers, problems = check_package(self.blobs, r, pid, trusted=trusted)
                results.append(
                    VerifyResult(
                        package=str(pid),
                        name=name,
                        files=files,
                        signed_by=signers,
                        problems=tuple(problems),
                    )
                )
        return results

    def verify_store(self) -> StoreReport:
        """Re-hash every object in the store (referenced or not) and report bad ones,
        and the temporary files of interrupted writes removed since this Lab opened."""
        problems: list[Problem] = []
        count = 0
        total = 0
        for digest in self.blobs.digests():
            count += 1
            try:
                total += self.blobs.check(digest)
            except LabError as e:
                problems.append(Problem(where=f"object {digest.short}", message=e.message))
        for stray in self.blobs.strays():
            problems.append(Problem(where=stray, message="stray file in the object store"))
        cleaned = tuple(
            Problem(
                where=leftover.path,
                message=(
                    f"left by an interrupted write or job ({leftover.size} bytes"
                    + ("" if leftover.writer is None else f", by pid {leftover.writer}")
                    + "), removed"
                ),
            )
            for leftover in (*self._leftovers, *self._clean_temporary())
        )
        return StoreReport(objects=count, bytes=total, problems=tuple(problems), cleaned=cleaned)

    def verify_evidence(self) -> EvidenceReport:
        """Re-hash every sealed shadow and canary segment and compare each evidence file
        with what was sealed from it (an edit after sealing is reported)."""
        from breedlab.lab.evidence import verify_evidence

        segments, problems = verify_evidence(self)
        return EvidenceReport(segments=segments, problems=tuple(problems))

    def verify_ledger(self, *, witness: Path | None = None) -> LedgerReport:
        """Recompute the chain and the projections, replay every event through the
        authority table (signature by a key trusted at that seq, a role allowed to make
        that change), check the pinned lab key and every signed checkpoint; with a
        ``witness`` file, prove the ledger is a consistent extension of the tree head it
        holds (RFC 9162 consistency proof).

        Raises:
            ChainBroken: names the first bad seq or checkpoint, a ledger whose first key
                is not the pinned lab key, or one that is not an extension of the witness.
            UnauthorizedChange: names the first unsigned or unauthorized change.
            InvalidRequest: ``witness`` is not a witness file.
        """
        seen = None
        if witness is not None:
            try:
                seen = Witness.from_bytes(witness.read_bytes(), str(witness))
            except FileNotFoundError:
                raise NotFound(f"no witness file {witness}") from None
            except OSError as e:  # a folder, or not readable
                raise InvalidRequest(f"cannot read witness file {witness}: {e.strerror}") from e
        report = self.ledger.verify_chain()
        pinned = self.config.lab_key_id or None
        proved = None
        with self.ledger.reader() as r:
            try:
                check_pinned(next(r.events(), None), pinned)  # a rebuilt ledger, named first
                check_key_endorsements(self.blobs, r)
                # Checkpoints before signatures: an edit under a signed tree head is
                # reported as what it is (a rewritten history); one after the last
                # checkpoint is caught by its event's signature.
                checkpoints = check_checkpoints(self.blobs, r)
                authority = replay(r, self.blobs, pinned=pinned)
                if seen is not None:
                    leaves = r.event_hashes()
                    at = (
                        r.event(seen.checkpoint_seq) if len(leaves) >= seen.checkpoint_seq else None
                    )
                    recorded = at.payload if at and at.kind == "checkpoint.signed" else None
                    proved = check_witness(seen, leaves, authority.first_key, recorded)
            except (ChainBroken, UnauthorizedChange):
                raise
            except IntegrityError as e:
                raise ChainBroken(e.message) from e
        return LedgerReport(
            witness=None
            if proved is None
            else (
                f"consistent extension of the witnessed {proved['witness_size']} events "
                f"(root {str(proved['witness_root'])[:16]}): RFC 9162 proof of "
                f"{len(proved['proof'])} hash(es) to {proved['size']} events"
            ),
            events=report.events,
            head=report.head_hash,
            checkpoints=tuple(checkpoints),
            signed=authority.signed,
            attested=authority.attested,
            lab_key=authority.first_key or "",
            pinned=pinned is not None,
        )

    def checkpoint(self, *, key: str | None = None) -> Event:
        """Sign an RFC 6962 tree head over every event so far (``checkpoint.signed``)."""
        name = key or self.config.checkpoint_key
        with self.ledger.reader() as r:
            signer, role = self._signer(name, r)
        if role != Role.LAB.value:
            raise PolicyError(
                f"only a '{Role.LAB.value}' key signs ledger checkpoints; "
                f"{name!r} has role '{role}'"
            )
        with self.ledger.transaction() as tx:
            size = tx.locked_head()[0]
            cached = self._frontier
            if cached is None or cached.size > size:
                cached = Frontier()
            frontier = cached.copy().extend(tx.event_hashes(after=cached.size))
            root_hex = frontier.root().hex()
            payload = checkpoint_payload(lab=self.config.name, tree_size=size, root_hex=root_hex)
            envelope = self.blobs.put_bytes(
                dsse.sign(CHECKPOINT_PAYLOAD_TYPE, payload, signer).to_bytes()
            )
            ev = tx.append(
                "checkpoint.signed",
                f"tree:{size}",
                {
                    "tree_size": size,
                    "root": root_hex,
                    "key": name,
                    "keyid": signer.keyid,
                    "envelope": str(envelope),
                },
                signer=signer,
                actor=self.actor,
            )
        # Read the next checkpoint's leaves from here on (the events before are fixed:
        # an edit to them is what verification reports).
        self._frontier = frontier
        return ev

    def witness_export(self, path: Path) -> Witness:
        """Write the latest signed tree head to ``path`` for safekeeping outside the lab
        (a checkpoint is signed first if events came after the last one).

        Raises:
            PolicyError: the lab key is not at hand to sign a checkpoint.
            InvalidRequest: ``path`` cannot be written.
        """
        with self.ledger.reader() as r:
            current = r.last_event_kind() == "checkpoint.signed"
        if not current:
            self.checkpoint()
        with self.ledger.reader() as r:
            row = r.checkpoints()[-1]
            key = r.key_by_id(row.keyid)
        assert key is not None  # checkpoint() signs with a trusted lab key
        seen = Witness(
            lab=self.config.name,
            lab_key_id=str(row.keyid),
            lab_public_key=str(key.public_key),
            tree_size=int(row.tree_size),
            root=str(row.root),
            checkpoint_seq=int(row.seq),
            envelope=self.blobs.get_bytes(Digest.parse(row.envelope)),
        )
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_bytes(seen.to_bytes())
            os.replace(tmp, path)
        except OSError as e:  # no such folder, a folder in the way, not writable
            tmp.unlink(missing_ok=True)
            raise InvalidRequest(f"cannot write witness file {path}: {e.strerror}") from e
        return seen

    def sign_history(self) -> Event:
        """Vouch once, with the lab key, for ledger history written before events were
        signed (a ``ledger.attested`` event over the Merkle root of every event so far),
        and give a lab from before then what it now needs: a factory key and the lab
        key's id pinned in ``breedlab.toml``.

        Check the history by hand first (``ledger verify`` on a copy you trust): the
        attestation makes unsigned events count as the lab's own.

        Raises:
            PolicyError: the lab key is not at hand, or not endorsed yet
                (``keys endorse lab``).
            Conflict: nothing unsigned is left to vouch for.
        """
        with self.ledger.reader() as r:
            lab_key = self._endorser(r)
            attested = [e.seq for e in r.events(kinds=("ledger.attested",))]
            after = attested[-1] if attested else 0  # what an attestation covers already
            unsigned = sum(1 for e in r.events(after=after) if e.sig is None)
            has_factory = r.key(self.config.factory_key) is not None
            first = r.all_keys()[0] if r.all_keys() else None
        if not has_factory:
            self.generate_key(self.config.factory_key, Role.FACTORY)
        if not self.config.lab_key_id and first is not None:
            self._pin_lab_key(str(first.keyid))
        if not unsigned:
            raise Conflict("every event in this ledger is signed; nothing to vouch for")
        with self.ledger.transaction() as tx:
            leaves = tx.event_hashes()
            return tx.append(
                "ledger.attested",
                f"tree:{len(leaves)}",
                {
                    "tree_size": len(leaves),
                    "root": merkle_root(leaves).hex(),
                    "unsigned": unsigned,
                    "keyid": lab_key.keyid,
                    "reason": "history written before events were signed, vouched for once",
                },
                signer=lab_key,
                actor=self.actor,
            )

    def _pin_lab_key(self, keyid: str) -> None:
        """Write ``lab_key_id`` into ``[signing]`` of this lab's breedlab.toml."""
        path = self.config.root / CONFIG_NAME
        text = path.read_text("utf-8")
        if re.search(r"(?m)^lab_key_id\s*=", text):
            text = re.sub(r"(?m)^lab_key_id\s*=.*$", f'lab_key_id = "{keyid}"', text)
        elif re.search(r"(?m)^\[signing\]", text):
            text = re.sub(r"(?m)^\[signing\]$", f'[signing]\nlab_key_id = "{keyid}"', text, count=1)
        else:
            text += f'\n[signing]\nlab_key_id = "{keyid}"\n'
        path.write_text(text, "utf-8")
        self.config = load_config(self.config.root)

    def events(self, *, after: int = 0, kinds: Sequence[str] = ()) -> list[Event]:
        with self.ledger.reader() as r:
            return list(r.events(after=after, kinds=kinds))

    # -- aliases -----------------------------------------------------------------------------

    def set_alias(
        self,
        capability: str,
        alias: str,
        ref: str,
        *,
        expect: str | None = None,
        reason: str = "",
        key: str | None = None,
    ) -> AliasMove:
        """Move ``capability@alias`` to a package by compare-and-swap (DESIGN §5).

        ``expect`` is the package the alias must point at now (``None``: must be unset).
        The move is signed by ``key`` (default: the lab key); ``shadow`` and ``canary``
        take a production key (or the factory's, for the controller's recommendation).
        ``champion`` and ``previous`` never move here: only :meth:`promote` and
        :meth:`rollback` move them, with every release control.

        Raises:
            Conflict: the alias does not point at ``expect`` (someone moved it).
            PolicyError: the package may not take this alias, or the key may not move it.
        """
        if not _ALIAS.fullmatch(alias):
            raise InvalidRequest(f"bad alias name {alias!r}: lowercase letters, digits, '_', '-'")
        if alias in CHAMPION_ALIASES:
            hint = "breedlab rollback" if alias == "previous" else f"breedlab promote {capability}"
            raise PolicyError(
                f"{capability}@{alias} moves only by promotion or rollback, with every release "
                f"control; use '{hint}'"
            )
        with self.ledger.reader() as r:
            pid = self._resolve(r, ref)
            expected = None if expect is None else str(self._resolve(r, expect))
            signer, role = self._signer(key, r) if key else (self._lab_signer(r), "lab")
            allowed = {"shadow": ("production", "factory"), "canary": ("production",)}
            if alias in allowed and role not in allowed[alias]:
                raise PolicyError(
                    f"{capability}@{alias} is moved by a production key (--key NAME); "
                    f"{key or self.config.checkpoint_key!r} has role '{role}'"
                )
            manifest = self.manifest(pid)
            if manifest.capability != capability:
                raise PolicyError(
                    f"package {pid.short} belongs to capability {manifest.capability!r}, "
                    f"not {capability!r}"
                )
            if alias in RELEASE_ALIASES and manifest.kind is not Kind.MODEL:
                raise PolicyError(
                    f"alias {alias!r} takes models, and {pid.short} is a {manifest.kind}"
                )
            self._require_intact(r, pid)
            current = r.alias(capability, alias)
        if current != expected:  # a stale read, told apart from a lost race (the CAS below)
            now = Digest.parse(current).short if current else "nothing"
            raise Conflict(
                f"{capability}@{alias} points at {now}, not "
                f"{Digest.parse(expected).short if expected else 'nothing'}",
                hint=f"to move it from {now}, pass --expect {current}"
                if current
                else "it is unset: omit --expect",
            )
        check_registered_model(self, pid)
        with self.ledger.transaction() as tx:
            return _alias_move(
                self._move_alias(tx, capability, alias, pid, expected, reason, signer=signer)
            )

    def _move_alias(
        self,
        tx: Txn,
        capability: str,
        alias: str,
        pid: Digest,
        expected: str | None,
        reason: str,
        *,
        signer: KeyPair,
        via: str | None = None,
    ) -> Event:
        """Append one ``alias.moved`` (its projection is the compare-and-swap)."""
        if tx.revocation(str(pid)) is not None:
            raise PolicyError(f"package {pid.short} was revoked")
        payload: dict[str, JsonValue] = {
            "capability": capability,
            "alias": alias,
            "old": expected,
            "new": str(pid),
            "reason": reason,
        }
        if via is not None:
            payload["via"] = via
        return tx.append("alias.moved", capability, payload, signer=signer, actor=self.actor)

    def alias(self, capability: str, alias: str) -> Digest | None:
        with self.ledger.reader() as r:
            target = r.alias(capability, alias)
        return None if target is None else Digest.parse(target)

    def alias_history(self, capability: str) -> list[AliasMove]:
        with self.ledger.reader() as r:
            return [_alias_move(e) for e in r.events(kinds=("alias.moved",), subject=capability)]

    # -- lineage and reconstruction -----------------------------------------------------------

    def lineage(self, ref: str) -> LineageGraph:
        """Ancestors (the package first, then breadth-first) and descendants of a package."""
        from breedlab.lab.release import release_records

        pid = self.resolve(ref)
        with self.ledger.reader() as r:
            ancestors = self._walk(r, pid, up=True)
            descendants = self._walk(r, pid, up=False)[1:]
        joined = release_records(self, [n.id for n in (*ancestors, *descendants)])

        def join(nodes: list[LineageNode]) -> tuple[LineageNode, ...]:
            return tuple(dataclasses.replace(n, release=joined[n.id]) for n in nodes)

        return LineageGraph(root=str(pid), ancestors=join(ancestors), descendants=join(descendants))

    def _walk(self, r: Reader, start: Digest, *, up: bool) -> list[LineageNode]:
        seen: set[str] = set()
        order: list[LineageNode] = []
        queue = [str(start)]
        while queue:
            pid = queue.pop(0)
            if pid in seen:
                continue
            seen.add(pid)
            manifest = self.manifest(Digest.parse(pid))
            statement = Statement.from_bytes(self.blobs.get_bytes(manifest.provenance))
            build = statement.predicate.get("buildDefinition", {}).get("buildType", "")
            order.append(
                LineageNode(
                    id=pid,
                    name=manifest.name,
                    kind=manifest.kind.value,
                    build_type=str(build).rsplit("/", 2)[-2] if build else "?",
                    parents=tuple(str(p) for p in manifest.parents),
                )
            )
            queue.extend(str(p) for p in manifest.parents) if up else queue.extend(r.children(pid))
        return order

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
        folder = out or self.config.work_dir / "reconstruct" / pid.hex[:16]
        if folder.exists() and any(folder.iterdir()):
            raise InvalidRequest(f"{folder} exists and is not empty; pass --out to a new folder")
        from breedlab.lab.replay import NOT_REPLAYABLE, build_type, replay_lineage

        replayed: tuple[tuple[str, str, str | None], ...] = ()
        if build_type(self, pid) not in NOT_REPLAYABLE or any(
            build_type(self, p) not in NOT_REPLAYABLE for p in manifest.parents
        ):
            steps = replay_lineage(self, pid, executor=self.executor(workers))
            replayed = tuple((r.package, r.operator, r.recomputed) for r in steps)
        existed = folder.exists()  # an empty folder the user made: on failure, emptied, kept
        folder.mkdir(parents=True, exist_ok=True)
        try:
            for entry in manifest.files:
                target = folder / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                self.blobs.copy_to(entry.digest, target)
        except LabError:
            discard(folder, existed=existed)
            raise
        rebuilt = []
        for f in source.scan(folder):
            with f.location.open("rb") as stream:
                from breedlab.digest import sha256_stream

                hex_, size = sha256_stream(stream)
            rebuilt.append(FileEntry(path=f.path, sha256=hex_, size=size))
        derived = Manifest(
            kind=manifest.kind,
            name=manifest.name,
            capability=manifest.capability,
            license=manifest.license,
            data_class=manifest.data_class,
            risk_tier=manifest.risk_tier,
            files=tuple(rebuilt),
            parents=manifest.parents,
            provenance=manifest.provenance,
            family=manifest.family,
            meta=manifest.meta,
        )
        return Reconstruction(
            package=str(pid),
            folder=str(folder),
            recomputed=str(derived.id),
            files=len(rebuilt),
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
        from breedlab.lab.breeding import RoundResult, approved_parents, run_round
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
        return RoundResult(
            round_id=result.round_id,
            capability=result.capability,
            champion=result.champion,
            winner=result.winner,
            decision_seq=result.decision_seq,
            decision=result.decision,
            record=result.record,
            report=str(path),
            generated=result.generated,
        )

    @_interruptible
    def reproduce(self, ref: str, *, workers: int | None = None) -> Reproduction:
        """Re-run the operator recorded in a package's provenance and compare ids."""
        from breedlab.lab.replay import reproduce

        return reproduce(self, self.resolve(ref), executor=self.executor(workers))

    def decision(self, ref: str) -> tuple[Event, dict[str, JsonValue]]:
        """A ``decision.made`` event and its record: ``latest``, the event's seq,
        ``round-N`` (``CAP/round-N`` when two capabilities have one), or a prefix of the
        record's digest.

        Raises:
            NotFound: no such decision. InvalidRequest: an ambiguous digest prefix.
        """
        events = self.events(kinds=("decision.made",))
        if ref == "latest":
            found = events[-1:]
        elif ref.isdigit():
            found = [e for e in events if e.seq == int(ref)]
        elif "round-" in ref:
            cap, _, round_id = ref.rpartition("/")
            found = [
                e for e in events if e.payload.get("round") == round_id and cap in ("", e.subject)
            ]
            if len({e.subject for e in found}) > 1:
                names = ", ".join(sorted(f"{e.subject}/{round_id}" for e in found))
                raise InvalidRequest(
                    f"{ref} names a round of more than one capability",
                    hint=f"name one of: {names}",
                )
        else:
            prefix = parse_prefix(ref)
            found = [
                e
                for e in events
                if str(e.payload.get("decision", "")).removeprefix("sha256:").startswith(prefix)
            ]
            if len(found) > 1:
                raise InvalidRequest(f"decision prefix {ref} is ambiguous; type more digits")
        if not found:
            raise NotFound(f"no decision {ref!r}; name one by seq, round-N, digest or 'latest'")
        chosen = found[-1]
        record = canonical.decode(
            self.blobs.get_bytes(Digest.parse(str(chosen.payload["decision"])))
        )
        return chosen, record

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

    def shadow_start(
        self, capability: str, ref: str, *, sample: float = 1.0, key: str | None = None
    ) -> Event:
        """Put a recommended or approved package on ``capability@shadow`` and mirror to it
        (signed by a production ``key``, else ``[signing] release_key``)."""
        from breedlab.lab.release import start_shadow

        return start_shadow(self, capability, ref, sample=sample, key=key)

    def shadow_report(self, capability: str) -> tuple[Digest, ShadowReport]:
        """The current shadow run in numbers (agreement, flips, latency ratios, errors)."""
        from breedlab.lab.release import shadow_report

        return shadow_report(self, capability)

    def canary_start(
        self,
        capability: str,
        *,
        percent: float | None = None,
        cap: ExposureCap | None = None,
        key: str | None = None,
    ) -> Event:
        """Start a canary of the shadow package once the shadow gate passes (signed by a
        production ``key``). ``cap`` bounds each stage's exposure (default: 1000 canary
        requests per stage)."""
        from breedlab.lab.release import start_canary

        return start_canary(self, capability, percent=percent, cap=cap, key=key)

    def canary_status(self, capability: str) -> dict[str, JsonValue]:
        """Stage, weight and guardrail statistics of the latest canary."""
        from breedlab.lab.release import canary_status

        return canary_status(self, capability)

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
        from breedlab.lab.release import PromotionPolicy, promote

        policy = PromotionPolicy() if baking is None else PromotionPolicy(baking=baking)
        return promote(self, capability, ref, policy=policy, key=key)

    def rollback(self, capability: str, *, key: str | None = None) -> Event:
        """Return ``champion`` to ``previous``; records the measured recovery time."""
        from breedlab.lab.release import rollback

        return rollback(self, capability, key=key)

    @_interruptible
    def exit_criteria(self, capability: str, *, workers: int | None = None) -> list[Criterion]:
        """The seed's v1 exit criteria, each pass/fail with evidence."""
        from breedlab.lab.release import exit_criteria

        return exit_criteria(self, capability, workers=workers)


def _require_reason(reason: str) -> None:
    if not reason.strip():
        raise InvalidRequest("a reason is required (--reason TEXT)")


def _default_name(path: Path) -> str:
    base = path.resolve().name
    stem = base.split(".")[0] if path.is_file() else base
    cleaned = re.sub(r"[^A-Za-z0-9_.+-]", "-", stem).strip("-.") or "package"
    return cleaned[:128]


def _name_of(r: Reader, keyid: str) -> str:
    row = r.key_by_id(keyid)
    return str(row.name) if row is not None else keyid[:12]


def _alias_move(ev: Event) -> AliasMove:
    p = ev.payload
    return AliasMove(
        seq=ev.seq,
        at=ev.at,
        actor=ev.actor,
        capability=str(p["capability"]),
        alias=str(p["alias"]),
        old=None if p["old"] is None else str(p["old"]),
        new=str(p["new"]),
        reason=str(p.get("reason", "")),
    )
