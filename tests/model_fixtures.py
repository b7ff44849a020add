"""A tiny model folder built locally from a config (random weights from a seed, a byte-level
BPE tokenizer trained on a few sentences; nothing downloaded), and the model server run on
it as a real process."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from fabriek.model_server.build import MERGES, SENTENCES
from tests.servers import free_port


@dataclass(frozen=True)
class TinyModelSpec:
    """The sizes of a tiny model (see fabriek.model_server.model.ModelConfig)."""

    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int = 64
    max_context: int = 2048
    seed: int = 7


def cache_root() -> Path:
    """Where built models are kept between runs (per user, outside the checkout)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fabriek-tests" / "models"


def tiny_model(spec: TinyModelSpec = TinyModelSpec(), root: Path | None = None) -> Path:
    """A model folder for `spec`, built once (its name is a hash of the spec and corpus)."""
    from fabriek.model_server.build import build

    key = json.dumps([asdict(spec), SENTENCES, MERGES], sort_keys=True)
    folder = (root or cache_root()) / f"tiny-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (folder / "weights.npz").exists():
        return folder
    partial = folder.with_name(folder.name + f".{os.getpid()}.partial")
    build(partial, **asdict(spec))
    with contextlib.suppress(OSError):  # another worker built it first
        partial.rename(folder)
    return folder


@dataclass(frozen=True)
class RunningServer:
    """A model server process and how to reach it."""

    base_url: str
    secret: str
    name: str
    process: subprocess.Popen[bytes]


@contextmanager
def model_server(
    folder: Path, name: str = "tiny", secret: str = "s3cret", max_running: int = 4
) -> Iterator[RunningServer]:
    """Run `python -m fabriek.model_server` on `folder` on a free port until the block ends."""
    port = free_port()
    env = dict(os.environ, MODEL_SERVER_SECRET=secret)
    process = subprocess.Popen(
        [
            sys.executable, "-m", "fabriek.model_server", "--model", str(folder),
            "--port", str(port), "--served-model-name", name,
            "--api-key-env", "MODEL_SERVER_SECRET", "--max-running", str(max_running),
        ],
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the model server exited with {process.returncode}")
            try:
                if httpx.get(f"{base}/health", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the model server did not become healthy")
            time.sleep(0.05)
        yield RunningServer(base, secret, name, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
