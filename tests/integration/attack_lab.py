"""The lab under attack: a small real lab (keys, two capabilities, packages, signatures,
approvals, aliases, a signed checkpoint) and the means to tamper with it. ``conftest``
builds it once per session and copies it for every test.

A ``Fixture`` (one opened copy) knows what is where, so a test can say "flip a byte in
the release approval of digits-wide" instead of hunting for digests. Tampering goes
around the Lab on purpose: bytes are flipped with ``open(..., "r+b")`` (file modes do not
stop root) and ledger rows are edited with ``sqlite3``.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from breedlab import canonical
from breedlab.capabilities import contract_path
from breedlab.digest import Digest
from breedlab.lab import Lab
from breedlab.ledger import GENESIS, event_hash
from breedlab.ledger.chain import EventSignature
from breedlab.registry.manifest import Manifest

#: The built-in contract renamed: a second capability, for wrong-capability attacks.
LETTERS_CONTRACT = (
    contract_path("digits").read_text("utf-8").replace('name = "digits"', 'name = "letters"')
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ids:
    """Package ids in the template lab (``sha256:<hex>``)."""

    capability: str  # digits contract, signed by alice
    letters: str  # letters contract, unsigned
    dataset: str  # digits-data: two files, signed by erin
    model: str  # digits-linear: three files, parent dataset, signed by alice,
    #             approved for release by pat and as a parent by alice; digits@champion
    wide: str  # digits-wide: signed by alice, approved for release by pat; digits@staging
    draft: str  # digits-draft: unsigned, unapproved; digits@staging after the checkpoint
    letters_model: str  # letters-linear: a model of the other capability, approved


@dataclass(frozen=True, slots=True, kw_only=True)
class Fixture:
    """One copy of the template lab, opened, with the means to tamper with it."""

    root: Path
    lab: Lab
    ids: Ids

    # -- where things are -------------------------------------------------------------

    def blob_path(self, digest: str | Digest) -> Path:
        d = digest if isinstance(digest, Digest) else Digest.parse(digest)
        return self.lab.blobs.path(d)

    def manifest(self, package: str) -> Manifest:
        return self.lab.manifest(Digest.parse(package))

    def file_digest(self, package: str, path: str) -> str:
        entries = {f.path: f for f in self.manifest(package).files}
        return str(entries[path].digest)

    def envelope(self, table: str, package: str, *, purpose: str | None = None) -> str:
        """The envelope digest of a ``signatures`` or ``approvals`` row of ``package``."""
        assert table in ("signatures", "approvals")
        query = f"SELECT envelope FROM {table} WHERE package = ?"
        args: list[str] = [package]
        if purpose is not None:
            query += " AND purpose = ?"
            args.append(purpose)
        with self.sql() as db:
            rows = db.execute(query, args).fetchall()
        assert len(rows) == 1, rows
        return str(rows[0][0])

    # -- tampering ----------------------------------------------------------------------

    def flip(self, digest: str | Digest, offset: int | None = None) -> int:
        """XOR one byte of a stored blob (the middle one by default); returns the offset."""
        path = self.blob_path(digest)
        size = path.stat().st_size
        at = size // 2 if offset is None else offset % size
        mode = path.stat().st_mode
        path.chmod(0o644)  # blobs are 0444; root ignores that, anyone else must chmod
        with path.open("r+b") as f:
            f.seek(at)
            byte = f.read(1)
            f.seek(at)
            f.write(bytes([byte[0] ^ 0x01]))
        path.chmod(mode)
        return at

    @contextlib.contextmanager
    def sql(self) -> Iterator[sqlite3.Connection]:
        """The ledger database, directly, in autocommit mode, as an attacker with the file
        has it: the append-only triggers (which refuse edits to ``events``) dropped first,
        so each test shows that verification still catches what is changed next."""
        db = sqlite3.connect(self.root / "ledger.db", isolation_level=None)
        db.execute("DROP TRIGGER IF EXISTS events_no_update")
        db.execute("DROP TRIGGER IF EXISTS events_no_delete")
        try:
            yield db
        finally:
            db.close()

    def seq_of(self, kind: str, *, nth: int = 0) -> int:
        """The seq of the ``nth`` event of ``kind`` (0 = first, -1 = last)."""
        with self.sql() as db:
            seqs = [r[0] for r in db.execute("SELECT seq FROM events WHERE kind = ?", (kind,))]
        return int(sorted(seqs)[nth])

    def last_seq(self) -> int:
        with self.sql() as db:
            return int(db.execute("SELECT max(seq) FROM events").fetchone()[0])

    def reseal(self, from_seq: int) -> None:
        """Recompute the hash chain from ``from_seq`` on and fix the head row, as an
        attacker with write access to the database (but no signing key) would."""
        with self.sql() as db:
            rows = db.execute(
                "SELECT seq, at, actor, kind, subject, payload, sig FROM events ORDER BY seq"
            ).fetchall()
            prev = GENESIS
            db.execute("BEGIN")
            for seq, at, actor, kind, subject, payload, sig in rows:
                if seq >= from_seq:
                    # The signatures stay as they were: the attacker holds no key.
                    digest = event_hash(
                        seq=seq,
                        at=at,
                        actor=actor,
                        kind=kind,
                        subject=subject,
                        payload=canonical.decode(payload.encode("utf-8")),
                        prev_hash=prev,
                        sig=None
                        if sig is None
                        else EventSignature.from_json(canonical.decode(sig.encode("utf-8"))),
                    )
                    db.execute(
                        "UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?",
                        (prev, digest, seq),
                    )
                    prev = digest
                else:
                    prev = db.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()[0]
            db.execute("UPDATE head SET seq = ?, hash = ?", (rows[-1][0], prev))
            db.execute("COMMIT")


def write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return folder


def torch_model_files(scratch: Path, name: str, width: int) -> dict[str, bytes]:
    """A tiny real digits model's files (models must answer their contract to be released);
    each model its own width, so that no two share a file blob."""
    import torch

    from breedlab.families.torch_family import build_module, save_torch_model

    config = {"architecture": "mlp", "classes": 10, "hidden": [width], "inputs": 64}
    with torch.random.fork_rng():
        torch.manual_seed(width)
        module = build_module(config)
    save_torch_model(scratch / f"{name}-src", config, module)
    return {f.name: f.read_bytes() for f in (scratch / f"{name}-src").iterdir()}


def build_template(root: Path, scratch: Path) -> Ids:
    rng = random.Random(20261122)
    lab = Lab.init(root, name="attacks")
    with lab:
        for name, role in (
            ("alice", "model"),
            ("erin", "evaluation"),
            ("pat", "production"),
            ("sam", "security"),
        ):
            lab.generate_key(name, role)
        capability = lab.add_capability(contract_path("digits"), sign_with="alice")
        letters_toml = scratch / "letters.toml"
        letters_toml.write_text(LETTERS_CONTRACT, "utf-8")
        letters = lab.add_capability(letters_toml)

        dataset = lab.import_path(
            write_folder(
                scratch / "digits-data",
                {"data.safetensors": rng.randbytes(4096), "README.md": b"seeded bytes\n"},
            ),
            kind="dataset", capability="digits", license="CC-BY-4.0", name="digits-data",
            sign_with="erin",
        )  # fmt: skip
        model = lab.import_path(
            write_folder(
                scratch / "digits-linear",
                {
                    **torch_model_files(scratch, "digits-linear", 4),
                    "notes/card.md": b"# digits-linear\n",
                },
            ),
            kind="model", capability="digits", license="Apache-2.0", name="digits-linear",
            parents=[str(dataset.id)], sign_with="alice",
        )  # fmt: skip
        wide = lab.import_path(
            write_folder(scratch / "digits-wide", torch_model_files(scratch, "digits-wide", 8)),
            kind="model", capability="digits", license="MIT", name="digits-wide",
            sign_with="alice",
        )  # fmt: skip
        draft = lab.import_path(
            write_folder(scratch / "digits-draft", torch_model_files(scratch, "digits-draft", 3)),
            kind="model", capability="digits", license="MIT", name="digits-draft",
        )  # fmt: skip
        letters_model = lab.import_path(
            write_folder(scratch / "letters", torch_model_files(scratch, "letters", 5)),
            kind="model", capability="letters", license="MIT", name="letters-linear",
            sign_with="alice",
        )  # fmt: skip
        lab.approve(str(model.id), purpose="release", key="pat")
        lab.approve(str(model.id), purpose="parent", key="alice")
        lab.approve(str(wide.id), purpose="release", key="pat")
        lab.approve(str(letters_model.id), purpose="release", key="pat")
        lab.promote("digits", str(model.id), key="pat")  # the first champion
        lab.set_alias("digits", "staging", str(wide.id), reason="try wide")
        lab.checkpoint()
        lab.set_alias("digits", "staging", str(draft.id), expect=str(wide.id), reason="draft")
        # The template must verify before anyone attacks it.
        assert all(r.ok for r in lab.verify()), lab.verify()
        assert not lab.verify_store().problems
        lab.verify_ledger()
    return Ids(
        capability=str(capability.id),
        letters=str(letters.id),
        dataset=str(dataset.id),
        model=str(model.id),
        wide=str(wide.id),
        draft=str(draft.id),
        letters_model=str(letters_model.id),
    )
