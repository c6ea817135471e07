"""Authority: who may make which change, checked when it is made and replayed after
(DESIGN §13; seed: "every artifact signed, every promotion controlled").

- ``policy``: the one table (event kind -> roles and condition) and the state it reads;
  the promotion and approval rules it applies are :mod:`breedlab.release.promotion` (pure).
- ``keys``: which keys the lab trusts, seq by seq (lab-key endorsements, revocations).
- ``replay``: verify every event's signature against the keys trusted at its seq and
  its authority against the table, in chain order.

Every state change in the ledger is signed by its actor's key; an approval counts for
the key that really signed it; ``champion`` moves only by promotion or rollback.
"""

from __future__ import annotations

from breedlab.authority.keys import (
    KEY_PAYLOAD_TYPE,
    KeyRing,
    KeyState,
    key_endorsements,
    key_statement,
    trusted_keys,
)
from breedlab.authority.policy import (
    RULES,
    Approval,
    AuthorityState,
    PromotionFacts,
    Rule,
    Signer,
    approval_problems,
    authorize,
    gate_problems,
    may,
)
from breedlab.authority.replay import AuthorityReport, Replayer, envelope_facts, replay

__all__ = [
    "KEY_PAYLOAD_TYPE",
    "RULES",
    "Approval",
    "AuthorityReport",
    "AuthorityState",
    "KeyRing",
    "KeyState",
    "PromotionFacts",
    "Replayer",
    "Rule",
    "Signer",
    "approval_problems",
    "authorize",
    "envelope_facts",
    "gate_problems",
    "key_endorsements",
    "key_statement",
    "may",
    "replay",
    "trusted_keys",
]
