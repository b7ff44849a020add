"""A tiny causal language model in NumPy: a few-layer pre-norm transformer (multi-head
attention with a key/value cache, a GELU MLP), its weights
random from a seed and its sizes from a JSON config. It says nothing sensible; what matters
is that tokens, streaming and usage are real, and that it runs fast on a CPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fabriek.model_server.tokenizer import Tokenizer

Array = NDArray[Any]


@dataclass(frozen=True)
class ModelConfig:
    """The model's sizes (config.json)."""

    vocab_size: int
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 128
    max_context: int = 512
    seed: int = 0

    @classmethod
    def load(cls, path: Path) -> ModelConfig:
        data = json.loads(path.read_text())
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def random_weights(config: ModelConfig) -> dict[str, Array]:
    """Weights drawn from `config.seed` (scaled so activations stay of order one)."""
    rng = np.random.default_rng(config.seed)
    d, f = config.d_model, config.d_ff

    def normal(*shape: int, scale: float) -> Array:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w: dict[str, Array] = {
        "embed": normal(config.vocab_size, d, scale=1.0),
        "pos": normal(config.max_context, d, scale=0.1),
        "norm_f": np.ones(d, np.float32),
        # Untied from the input embedding: tied random weights make a token predict itself.
        "unembed": normal(config.vocab_size, d, scale=2.0 * d**-0.5),
    }
    for i in range(config.n_layers):
        w[f"l{i}.norm1"] = np.ones(d, np.float32)
        w[f"l{i}.norm2"] = np.ones(d, np.float32)
        w[f"l{i}.qkv"] = normal(d, 3 * d, scale=d**-0.5)
        w[f"l{i}.out"] = normal(d, d, scale=d**-0.5 / config.n_layers)
        w[f"l{i}.up"] = normal(d, f, scale=d**-0.5)
        w[f"l{i}.down"] = normal(f, d, scale=f**-0.5 / config.n_layers)
    return w


def _norm(x: Array, g: Array) -> Array:
    # Sums times 1/d rather than .mean(): NumPy's mean costs more than the arithmetic
    # at these sizes.
    scale = np.float32(1.0 / x.shape[-1])
    c = x - x.sum(-1, keepdims=True) * scale
    out: Array = c / np.sqrt((c * c).sum(-1, keepdims=True) * scale + np.float32(1e-5)) * g
    return out


def _gelu(x: Array) -> Array:
    # The sigmoid approximation of GELU: fewer operations than the tanh one.
    out: Array = x / (np.float32(1.0) + np.exp(np.float32(-1.702) * x))
    return out


class KVCache:
    """Keys and values of the positions seen so far, per layer."""

    def __init__(self, layers: int) -> None:
        self.k: list[Array | None] = [None] * layers
        self.v: list[Array | None] = [None] * layers
        self.length = 0


class TinyLM:
    """The model: `forward` runs new tokens through it, extending a cache."""

    def __init__(self, config: ModelConfig, weights: dict[str, Array]) -> None:
        self.config = config
        self.w = weights

    def new_cache(self) -> KVCache:
        """An empty cache for one sequence."""
        return KVCache(self.config.n_layers)

    def _attend(self, x: Array, i: int, cache: KVCache) -> Array:
        c, w = self.config, self.w
        t, d = x.shape
        h, hd = c.n_heads, d // c.n_heads
        qkv = (x @ w[f"l{i}.qkv"]).reshape(t, 3, h, hd).transpose(1, 2, 0, 3)
        q, k, v = qkv[0], qkv[1], qkv[2]
        old_k, old_v = cache.k[i], cache.v[i]
        if old_k is not None and old_v is not None:
            k = np.concatenate([old_k, k], axis=1)
            v = np.concatenate([old_v, v], axis=1)
        cache.k[i], cache.v[i] = k, v
        scores = q @ k.transpose(0, 2, 1) * np.float32(hd**-0.5)
        past = k.shape[1] - t
        if t > 1:  # causal: new position j sees the past and new positions up to j
            mask = np.triu(np.ones((t, t), bool), 1)
            scores[:, :, past:][:, mask] = -1e9
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        mixed: Array = (scores @ v).transpose(1, 0, 2).reshape(t, d) @ w[f"l{i}.out"]
        return mixed

    def forward(self, tokens: list[int], cache: KVCache) -> Array:
        """The final hidden states of `tokens`, which follow the cache's positions."""
        w = self.w
        start = cache.length
        x = w["embed"][tokens] + w["pos"][start : start + len(tokens)]
        for i in range(self.config.n_layers):
            x = x + self._attend(_norm(x, w[f"l{i}.norm1"]), i, cache)
            x = x + _gelu(_norm(x, w[f"l{i}.norm2"]) @ w[f"l{i}.up"]) @ w[f"l{i}.down"]
        cache.length = start + len(tokens)
        return _norm(x, w["norm_f"])

    def logits(self, hidden: Array) -> Array:
        """Next-token scores from one hidden state."""
        out: Array = self.w["unembed"] @ hidden
        return out

    def embed(self, tokens: list[int]) -> list[float]:
        """A text's embedding: the mean of its hidden states, of unit length."""
        hidden = self.forward(tokens, self.new_cache()).mean(0)
        norm = float(np.linalg.norm(hidden)) or 1.0
        return [float(x) for x in hidden / norm]


@dataclass
class LoadedModel:
    """A model folder loaded: config, weights, tokenizer."""

    config: ModelConfig
    model: TinyLM
    tokenizer: Tokenizer


def save_model(folder: Path, config: ModelConfig, tokenizer: Tokenizer) -> None:
    """Write a model folder: config.json, tokenizer.json and weights.npz (random weights
    from the config's seed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(asdict(config), indent=1))
    tokenizer.save(folder / "tokenizer.json")
    np.savez(folder / "weights.npz", **random_weights(config))  # type: ignore[arg-type]


def load_model(folder: Path) -> LoadedModel:
    """Read a model folder written by `save_model`."""
    config = ModelConfig.load(folder / "config.json")
    tokenizer = Tokenizer.load(folder / "tokenizer.json")
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} ids, config.json says {config.vocab_size}"
        )
    with np.load(folder / "weights.npz") as data:
        weights = {k: data[k].astype(np.float32) for k in data.files}
    return LoadedModel(config, TinyLM(config, weights), tokenizer)
