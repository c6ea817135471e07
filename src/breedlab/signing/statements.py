"""in-toto Statement v1 payloads and the SLSA Provenance v1 predicate.

Statement spec: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
SLSA provenance: https://slsa.dev/spec/v1.0/provenance

breedlab uses three predicates:
- SLSA provenance (``SLSA_PREDICATE``): subjects are a package's files; it records how
  they were made (builder, buildType, parameters, resolved dependencies). It carries no
  timestamps so the same inputs give the same bytes and hence the same package id; when
  things happened is the ledger's record.
- package signature (``SIGNATURE_PREDICATE``): subject is the package (its manifest digest).
- approval (``APPROVAL_PREDICATE``): subject is the package; predicate names the purpose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from breedlab import __version__, canonical
from breedlab.canonical import JsonValue
from breedlab.errors import IntegrityError

__all__ = [
    "APPROVAL_PREDICATE",
    "BUILDER_ID",
    "INTOTO_PAYLOAD_TYPE",
    "SIGNATURE_PREDICATE",
    "SLSA_PREDICATE",
    "STATEMENT_TYPE",
    "Statement",
    "Subject",
    "provenance_predicate",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
SLSA_PREDICATE = "https://slsa.dev/provenance/v1"
SIGNATURE_PREDICATE = "https://breedlab.dev/attestation/package-signature/v1"
APPROVAL_PREDICATE = "https://breedlab.dev/attestation/approval/v1"
BUILDER_ID = "https://breedlab.dev/builder/v1"
BUILD_TYPE_PREFIX = "https://breedlab.dev/build/"


@dataclass(frozen=True, slots=True, kw_only=True)
class Subject:
    name: str
    sha256: str

    def to_json(self) -> JsonValue:
        return {"digest": {"sha256": self.sha256}, "name": self.name}


@dataclass(frozen=True, slots=True, kw_only=True)
class Statement:
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Mapping[str, JsonValue]

    def to_bytes(self) -> bytes:
        return canonical.encode(
            {
                "_type": STATEMENT_TYPE,
                "predicate": dict(self.predicate),
                "predicateType": self.predicate_type,
                "subject": [s.to_json() for s in self.subjects],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Statement:
        """Parse stored statement bytes.

        Raises:
            IntegrityError: not canonical JSON or not an in-toto Statement v1.
        """
        obj = canonical.decode(data)
        try:
            if obj["_type"] != STATEMENT_TYPE:
                raise IntegrityError(f"not an in-toto Statement v1: _type={obj['_type']!r}")
            subjects = tuple(
                Subject(name=str(s["name"]), sha256=str(s["digest"]["sha256"]))
                for s in obj["subject"]
            )
            return cls(
                subjects=subjects,
                predicate_type=str(obj["predicateType"]),
                predicate=dict(obj["predicate"]),
            )
        except (KeyError, TypeError) as e:
            raise IntegrityError(f"malformed in-toto statement: missing {e}") from e


def provenance_predicate(
    *,
    build_type: str,
    external_parameters: Mapping[str, JsonValue],
    resolved_dependencies: Sequence[Subject] = (),
    byproducts: Sequence[Subject] = (),
) -> dict[str, JsonValue]:
    """A SLSA Provenance v1 predicate for a breedlab build (``import``, ``train``, ...)."""
    return {
        "buildDefinition": {
            "buildType": f"{BUILD_TYPE_PREFIX}{build_type}/v1",
            "externalParameters": dict(external_parameters),
            "internalParameters": {},
            "resolvedDependencies": [d.to_json() for d in resolved_dependencies],
        },
        "runDetails": {
            "builder": {"id": BUILDER_ID, "version": {"breedlab": __version__}},
            "byproducts": [b.to_json() for b in byproducts],
        },
    }
