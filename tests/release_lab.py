"""Builders for release tests: a lab with small real torch models, no round needed.

The champion is a small MLP trained in-process on the digits data for a second; the
``good`` candidate is the champion with tiny weight noise (agrees almost always); the
``broken`` one has its output head's rows permuted (a genuinely bad model: most of its
answers disagree with the champion and the labels).
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import torch
import uvicorn
from sklearn.datasets import load_digits

from breedlab.capabilities import contract_path
from breedlab.families.torch_family import build_module, save_torch_model
from breedlab.lab import Lab
from breedlab.serving.router import Router

CONFIG = {"architecture": "mlp", "classes": 10, "hidden": [32], "inputs": 64}


@functools.cache
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return data.data.astype(np.float32), data.target.astype(np.int64)


def _trained(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    module = build_module(CONFIG)
    x, y = digits()
    xt, yt = torch.as_tensor(x / 16.0 * 16.0), torch.as_tensor(y)
    opt = torch.optim.Adam(module.parameters(), lr=0.01)
    for _ in range(150):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(xt), yt)
        loss.backward()
        opt.step()
    return module.eval()


def write_models(root: Path) -> dict[str, Path]:
    """Champion, good candidate, second good candidate and broken candidate folders."""
    champion = _trained(0)
    folders = {}
    folders["champion"] = root / "champion"
    save_torch_model(folders["champion"], CONFIG, champion)
    for name, seed in (("good", 1), ("good2", 2)):
        torch.manual_seed(seed)
        module = build_module(CONFIG)
        module.load_state_dict(champion.state_dict())
        with torch.no_grad():
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 1e-4)
        folders[name] = root / name
        save_torch_model(folders[name], CONFIG, module)
    broken = build_module(CONFIG)
    broken.load_state_dict(champion.state_dict())
    with torch.no_grad():
        state = broken.state_dict()
        head = [k for k in state if k.startswith("head")]
        perm = torch.tensor([3, 7, 0, 9, 1, 8, 2, 5, 4, 6])
        for k in head:
            state[k].copy_(state[k][perm])
    folders["broken"] = root / "broken"
    save_torch_model(folders["broken"], CONFIG, broken)
    return folders


def release_lab(root: Path, *, capability_file: Path | None = None) -> tuple[Lab, dict[str, str]]:
    """A lab with keys, one capability, the four models imported and a champion set.

    Its operator made ``pat`` the production key that signs release actions by default
    (``[signing] release_key``), as ``breedlab serve --release-key pat`` would, and runs
    the shadow process at normal priority (``[release] shadow_priority``): at idle
    priority it gets no CPU at all on a saturated host, and tests must pass on one.
    """
    with Lab.init(root / "lab") as lab:
        for name, role in (
            ("alice", "model"),
            ("erin", "evaluation"),
            ("sam", "security"),
            ("pat", "production"),
        ):
            lab.generate_key(name, role)
    use_release_key(root / "lab", "pat")
    lab = Lab.open(root / "lab")
    info = lab.add_capability(capability_file or contract_path("digits"))
    cap = info.manifest.capability
    folders = write_models(root / "models")
    ids = {}
    for name, folder in folders.items():
        pkg = lab.import_path(
            folder,
            kind="model",
            capability=cap,
            license="MIT",
            sign_with="alice",
            name=name,
            family="torch",
        )
        ids[name] = str(pkg.id)
    # The capability's first champion, approved by production and security (enough for
    # every risk tier: a high-tier capability needs a security approval).
    lab.approve(ids["champion"], purpose="release", key="pat")
    lab.approve(ids["champion"], purpose="release", key="sam")
    lab.promote(cap, ids["champion"], key="pat")
    return lab, ids


def use_release_key(lab_root: Path, key: str) -> None:
    """Set ``[signing] release_key`` in a lab's breedlab.toml, and a shadow process at
    normal priority (``[release]``; add more release settings with ``release_settings``)."""
    config = lab_root / "breedlab.toml"
    text = config.read_text("utf-8")
    assert 'release_key = ""' in text and "[release]" not in text
    text = text.replace('release_key = ""', f'release_key = "{key}"')
    config.write_text(text + '\n[release]\nshadow_priority = "normal"\n', "utf-8")


def release_settings(lab_root: Path, **settings: int | str) -> None:
    """Add settings to the ``[release]`` table of a lab made by :func:`release_lab`."""
    config = lab_root / "breedlab.toml"
    lines = "".join(
        f"{k} = {json.dumps(v) if isinstance(v, str) else v}\n" for k, v in settings.items()
    )
    config.write_text(config.read_text("utf-8").replace("[release]\n", "[release]\n" + lines))


@contextlib.contextmanager
def serving(app: object) -> Iterator[str]:
    """Run ``app`` under a real uvicorn server on 127.0.0.1, an ephemeral port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def shadow(lab: Lab, router: Router, pkg: str, n: int = 60) -> None:
    """Start a shadow of ``pkg`` and mirror ``n`` requests to it through ``router``."""
    from breedlab.lab import release as controller

    controller.start_shadow(lab.supply, "digits", pkg)
    route = router.refresh().routes["digits"]
    assert router.mirror.wait_ready(timeout=300)  # an event, with a generous bound
    for i in range(n):
        router.predict(route, unit=f"s{i}", inputs=body(i)["inputs"], truth=None, low_risk=True)  # type: ignore[arg-type]
    router.mirror.flush()


def body(i: int, *, unit: str | None = None, label: bool = True) -> dict[str, object]:
    x, y = digits()
    row = i % len(x)
    out: dict[str, object] = {"unit": unit or f"user-{i}", "inputs": x[row].tolist()}
    if label:
        out["label"] = str(int(y[row]))
    return out


def client(url: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=300)  # generous: loaded hosts


#: The text capability's contract: at most this many characters per request.
TEXT_MAX_LENGTH = 80
TEXTS = (
    "the movie was great",
    "a boring plot and an awful actor",
    "not very good but fun",
    "the story is bad",
    "an actor was very great and the film fun",
    "boring",
    "the plot was not awful",
    "a good film but a bad story",
)


def text_release_lab(root: Path) -> tuple[Lab, dict[str, str], dict[str, Path]]:
    """:func:`release_lab` for text (issue 12): a ``notes`` capability whose contract
    ``capability init --modality text`` wrote (``max_length`` set to
    :data:`TEXT_MAX_LENGTH`), a tiny BERT sequence classifier imported with family
    ``transformers`` and promoted champion, and two candidates approved for release: a
    BERT of another seed (``bert2``) and a bare encoder with breedlab's linear head
    (``head``). Returns the lab, the package ids and the model folders by name."""
    from text_models import save_tiny_bert, save_tiny_encoder_classifier

    with Lab.init(root / "lab") as lab:
        for name, role in (("alice", "model"), ("sam", "security"), ("pat", "production")):
            lab.generate_key(name, role)
    use_release_key(root / "lab", "pat")
    lab = Lab.open(root / "lab")
    contract = lab.init_contract(
        root / "notes.toml", "notes", task="classification", modality="text", labels=["neg", "pos"]
    )
    text = contract.read_text("utf-8")
    assert "max_length = 2000" in text
    contract.write_text(text.replace("max_length = 2000", f"max_length = {TEXT_MAX_LENGTH}"))
    lab.add_capability(contract)
    folders = {"champion": root / "models" / "champion", "bert2": root / "models" / "bert2"}
    save_tiny_bert(folders["champion"], seed=0, labels=2)
    save_tiny_bert(folders["bert2"], seed=7, labels=2)
    folders["head"] = save_tiny_encoder_classifier(root / "models" / "head", seed=3, classes=2)
    ids = {}
    for name, folder in folders.items():
        pkg = lab.import_path(
            folder,
            kind="model",
            capability="notes",
            license="MIT",
            sign_with="alice",
            name=name,
            family="transformers",
        )
        ids[name] = str(pkg.id)
        lab.approve(ids[name], purpose="release", key="pat")
        lab.approve(ids[name], purpose="release", key="sam")
    lab.promote("notes", ids["champion"], key="pat")
    return lab, ids, folders
