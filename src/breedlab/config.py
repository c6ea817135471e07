"""Lab configuration: ``breedlab.toml``, read once into frozen values (``tomllib``).

```toml
[lab]
name = "my-lab"
actor = "ml-platform"          # recorded as the actor of events (default: $USER)

[store]
url = "objects"                # a path relative to the lab, or s3://bucket/prefix
endpoint = ""                  # s3 only: an S3-compatible endpoint (default: AWS)
region = ""                    # s3 only (default: $AWS_REGION, else us-east-1)

[ledger]
url = "ledger.db"              # a path relative to the lab (SQLite), or any SQLAlchemy URL
checkpoint_every = 100         # an automatic checkpoint after this many events (0: only
                               # at the end of each command)

[signing]
checkpoint_key = "lab"         # the lab key: endorses keys, signs checkpoints
lab_key_id = "9f2c..."         # that key's id, pinned here by init: verification refuses a
                               # ledger whose first key differs (a ledger rebuilt elsewhere)
factory_key = "factory"        # the lab's automation key: signs what operators make and
                               # what rounds and the serving controller record
release_key = ""               # a 'production' key for release actions when none is named
                               # (--key), and for the server's admin routes

[release]
seal_every = 200               # shadow/canary records sealed into the store at least this often
shadow_priority = "idle"       # idle: the shadow process gets only CPU nobody else wants
                               # (it may starve on a saturated host); normal: it competes

[executor]
kind = "local"                 # local | ray
workers = 2
ray_address = ""               # ray only: "" starts a private local cluster; else host:port

[sandbox]
operator_wall_seconds = 900    # wall-clock limit of one operator job: killed past it and
evaluation_wall_seconds = 300  # recorded as a failed job (timeout), never a hang
```
Unknown sections or keys are errors naming the key and the file. S3 credentials come
from the environment (``AWS_ACCESS_KEY_ID``...), never from this file.
"""

from __future__ import annotations

import getpass
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breedlab.errors import ConfigError

__all__ = [
    "CONFIG_NAME",
    "SHADOW_PRIORITIES",
    "LabConfig",
    "default_config_text",
    "load_config",
]

CONFIG_NAME = "breedlab.toml"
#: ``[release] shadow_priority`` (and ``serve --shadow-priority``): idle or normal.
SHADOW_PRIORITIES = ("idle", "normal")

_ALLOWED: dict[str, dict[str, type]] = {
    "lab": {"name": str, "actor": str},
    "store": {"url": str, "endpoint": str, "region": str},
    "ledger": {"url": str, "checkpoint_every": int},
    "signing": {"checkpoint_key": str, "lab_key_id": str, "factory_key": str, "release_key": str},
    "release": {"seal_every": int, "shadow_priority": str},
    "executor": {"kind": str, "workers": int, "ray_address": str},
    "sandbox": {"operator_wall_seconds": int, "evaluation_wall_seconds": int},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LabConfig:
    root: Path
    name: str = "breedlab"
    actor: str = ""
    store_url: str = "objects"
    store_endpoint: str = ""
    store_region: str = ""
    ledger_url: str = "ledger.db"
    checkpoint_every: int = 100
    checkpoint_key: str = "lab"
    lab_key_id: str = ""
    factory_key: str = "factory"
    release_key: str = ""
    seal_every: int = 200
    shadow_priority: str = "idle"
    executor: str = "local"
    workers: int = 2
    ray_address: str = ""
    operator_wall_seconds: int = 900
    evaluation_wall_seconds: int = 300

    @property
    def store_path(self) -> Path:
        return (self.root / self.store_url).resolve()

    @property
    def ledger_sqlalchemy_url(self) -> str:
        if "://" in self.ledger_url:
            return self.ledger_url
        return f"sqlite:///{(self.root / self.ledger_url).resolve()}"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def who(self) -> str:
        if self.actor:
            return self.actor
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "breedlab"


def default_config_text(name: str, *, lab_key_id: str = "") -> str:
    return f"""# breedlab lab configuration (see README, "Configuration").
[lab]
name = "{name}"

[store]
url = "objects"

[ledger]
url = "ledger.db"
checkpoint_every = 100

[signing]
checkpoint_key = "lab"
# The lab key's id. Keep a copy outside the lab: verification refuses a ledger whose
# first key is not this one (a ledger rebuilt under another key).
lab_key_id = "{lab_key_id}"
factory_key = "factory"
# A 'production' key used for release actions when none is named (and by 'serve').
release_key = ""

[executor]
kind = "local"
workers = 2
"""


def load_config(root: Path) -> LabConfig:
    """Read ``root/breedlab.toml``.

    Raises:
        ConfigError: no lab there, not TOML, or an unknown or mistyped key.
    """
    path = root / CONFIG_NAME
    try:
        doc: dict[str, Any] = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no lab at {root} (missing {CONFIG_NAME}); run 'breedlab init {root}' "
            "or pass --lab / set BREEDLAB_LAB"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    values: dict[str, Any] = {}
    for section, table in doc.items():
        allowed = _ALLOWED.get(section)
        if allowed is None or not isinstance(table, dict):
            raise ConfigError(f"{path}: unknown section [{section}]")
        for key, value in table.items():
            if key not in allowed:
                raise ConfigError(f"{path}: unknown key '{section}.{key}'")
            if not isinstance(value, allowed[key]) or isinstance(value, bool):
                raise ConfigError(f"{path}: '{section}.{key}' must be {allowed[key].__name__}")
            values[f"{section}.{key}"] = value
    executor = values.get("executor.kind", "local")
    if executor not in ("local", "ray"):
        raise ConfigError(f"{path}: 'executor.kind' must be 'local' or 'ray'")
    workers = values.get("executor.workers", 2)
    if workers < 1:
        raise ConfigError(f"{path}: 'executor.workers' must be at least 1")
    for key in ("ledger.checkpoint_every", "release.seal_every"):
        if values.get(key, 1) < (0 if key.startswith("ledger") else 1):
            raise ConfigError(f"{path}: '{key}' is too small")
    priority = values.get("release.shadow_priority", "idle")
    if priority not in SHADOW_PRIORITIES:
        raise ConfigError(f"{path}: 'release.shadow_priority' must be 'idle' or 'normal'")
    for key in ("sandbox.operator_wall_seconds", "sandbox.evaluation_wall_seconds"):
        if values.get(key, 1) < 1:
            raise ConfigError(f"{path}: '{key}' must be at least 1 (seconds)")
    pinned = values.get("signing.lab_key_id", "")
    if pinned and not re.fullmatch(r"[0-9a-f]{64}", pinned):
        raise ConfigError(f"{path}: 'signing.lab_key_id' must be 64 lowercase hex digits")
    return LabConfig(
        root=root.resolve(),
        name=values.get("lab.name", "breedlab"),
        actor=values.get("lab.actor", ""),
        store_url=values.get("store.url", "objects"),
        store_endpoint=values.get("store.endpoint", ""),
        store_region=values.get("store.region", ""),
        ledger_url=values.get("ledger.url", "ledger.db"),
        checkpoint_every=values.get("ledger.checkpoint_every", 100),
        checkpoint_key=values.get("signing.checkpoint_key", "lab"),
        lab_key_id=pinned,
        factory_key=values.get("signing.factory_key", "factory"),
        release_key=values.get("signing.release_key", ""),
        seal_every=values.get("release.seal_every", 200),
        shadow_priority=priority,
        executor=executor,
        workers=workers,
        ray_address=values.get("executor.ray_address", ""),
        operator_wall_seconds=values.get("sandbox.operator_wall_seconds", 900),
        evaluation_wall_seconds=values.get("sandbox.evaluation_wall_seconds", 300),
    )
