"""Package manifests: the canonical record whose SHA-256 is a package's id.

A manifest lists every file (path, sha256, size), the package's kind, name, capability,
license, data class, risk tier, parents and the digest of its SLSA provenance statement.
File names are bound into the id (unlike a folder hash). The id is the digest of the
manifest's *stored* bytes; :meth:`Manifest.from_bytes` refuses non-canonical bytes so a
re-serialisation can never stand in for what was hashed (DESIGN §4).

Paths are validated both when a manifest is built and when one is read: a manifest from
a tampered store must not be able to write outside a reconstruction folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from breedlab import canonical
from breedlab.canonical import JsonValue
from breedlab.choices import Choice
from breedlab.digest import Digest
from breedlab.errors import IntegrityError, InvalidRequest

__all__ = [
    "SCHEMA",
    "DataClass",
    "FileEntry",
    "Kind",
    "Manifest",
    "RiskTier",
    "check_relative_path",
]

SCHEMA = "breedlab.package/v1"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")
_MAX_PATH = 1024


class Kind(Choice):
    MODEL = "model"
    ADAPTER = "adapter"
    DATASET = "dataset"
    SUITE = "suite"
    CAPABILITY = "capability"
    ROUTER = "router"


class DataClass(Choice):
    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


class RiskTier(Choice):
    """Seed, stage 7: low-risk descendants may progress automatically; high never alone."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


def check_relative_path(path: str) -> str:
    """A package file path: relative POSIX, no ``..``/``.``/empty parts, no NUL or ``\\``.

    Raises:
        InvalidRequest: the path could escape a folder or is not portable.
    """
    if not path or len(path) > _MAX_PATH:
        raise InvalidRequest(f"bad package path {path!r}: empty or longer than {_MAX_PATH}")
    if path.startswith("/") or "\\" in path or "\x00" in path:
        raise InvalidRequest(f"bad package path {path!r}: absolute, backslash or NUL")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # bytes the file system gave that are not UTF-8
        raise InvalidRequest(
            f"bad package path {path!r}: its name is not valid UTF-8; rename the file"
        ) from None
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise InvalidRequest(f"bad package path {path!r}: path traversal ('{part}')")
    return path


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"bad package name {name!r}: letters, digits and '_ . + -', at most 128 characters"
        )
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class FileEntry:
    path: str
    sha256: str
    size: int

    def __post_init__(self) -> None:
        check_relative_path(self.path)
        Digest(self.sha256)
        if self.size < 0:
            raise InvalidRequest(f"negative size for {self.path}")

    @property
    def digest(self) -> Digest:
        return Digest(self.sha256)


def _freeze(meta: Mapping[str, JsonValue]) -> Mapping[str, JsonValue]:
    return MappingProxyType(dict(meta))


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """What a package is. Build with keyword arguments; ``to_bytes`` is what gets hashed."""

    kind: Kind
    name: str
    capability: str
    license: str
    data_class: DataClass
    risk_tier: RiskTier
    files: tuple[FileEntry, ...]
    parents: tuple[Digest, ...] = ()
    provenance: Digest
    family: str | None = None
    meta: Mapping[str, JsonValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name)
        if not self.files:
            raise InvalidRequest(f"package {self.name!r} has no files")
        paths = [f.path for f in self.files]
        if paths != sorted(paths):
            raise InvalidRequest("manifest files must be sorted by path")
        if len(set(paths)) != len(paths):
            raise InvalidRequest("manifest lists a path twice")
        folded = {p.casefold() for p in paths}
        if len(folded) != len(paths):
            raise InvalidRequest("manifest paths differ only by case (not portable)")
        object.__setattr__(self, "meta", _freeze(self.meta))

    def to_json(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {
            "schema": SCHEMA,
            "kind": self.kind.value,
            "name": self.name,
            "capability": self.capability,
            "license": self.license,
            "data_class": self.data_class.value,
            "risk_tier": self.risk_tier.value,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
            "parents": [str(p) for p in self.parents],
            "provenance": str(self.provenance),
        }
        if self.family is not None:
            out["family"] = self.family
        if self.meta:
            out["meta"] = dict(self.meta)
        return out

    def to_bytes(self) -> bytes:
        return canonical.encode(self.to_json())

    @property
    def id(self) -> Digest:
        """The package id: the digest of the canonical manifest bytes."""
        return Digest.of(self.to_bytes())

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse stored manifest bytes; refuses non-canonical or malformed manifests.

        Raises:
            IntegrityError: not canonical JSON, wrong schema, or invalid fields.
        """
        obj = canonical.decode(data)
        if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
            raise IntegrityError(f"not a {SCHEMA} manifest")
        known = {
            "schema", "kind", "name", "capability", "license", "data_class", "risk_tier",
            "files", "parents", "provenance", "family", "meta",
        }  # fmt: skip
        unknown = set(obj) - known
        if unknown:
            raise IntegrityError(f"manifest has unknown fields: {', '.join(sorted(unknown))}")
        try:
            manifest = cls(
                kind=Kind.parse(obj["kind"]),
                name=obj["name"],
                capability=obj["capability"],
                license=obj["license"],
                data_class=DataClass.parse(obj["data_class"]),
                risk_tier=RiskTier.parse(obj["risk_tier"]),
                files=tuple(
                    FileEntry(path=f["path"], sha256=f["sha256"], size=f["size"])
                    for f in obj["files"]
                ),
                parents=tuple(Digest.parse(p) for p in obj["parents"]),
                provenance=Digest.parse(obj["provenance"]),
                family=obj.get("family"),
                meta=obj.get("meta", {}),
            )
        except (KeyError, TypeError) as e:
            raise IntegrityError(f"malformed manifest: {e}") from e
        except InvalidRequest as e:
            raise IntegrityError(f"invalid manifest: {e.message}") from e
        if manifest.to_bytes() != data:
            raise IntegrityError("manifest does not round-trip to its stored bytes")
        return manifest
