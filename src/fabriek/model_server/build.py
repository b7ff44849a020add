"""`python -m fabriek.model_server.build DIR`: write a tiny model folder for the CPU model
server (config.json, tokenizer.json, weights.npz): a tokenizer trained on a few sentences,
random weights from a seed, nothing downloaded. For trying an endpoint on a site without
GPUs, and for the tests.

    python -m fabriek.model_server.build ./tiny --layers 2 --width 32 --context 2048
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fabriek.model_server.model import ModelConfig, save_model
from fabriek.model_server.tokenizer import Tokenizer

SENTENCES = [
    "The factory trains models and serves them to the people who pay for it.",
    "A job runs on a site with GPUs, and its energy is counted per project.",
    "Hello! How can I help you with your model today?",
    "The quick brown fox jumps over the lazy dog.",
    "Tokens are counted for every request, prompt and completion alike.",
]
MERGES = 120


def build(
    folder: Path,
    *,
    d_model: int = 32,
    n_layers: int = 2,
    n_heads: int = 2,
    d_ff: int = 64,
    max_context: int = 2048,
    seed: int = 7,
    sentences: list[str] | None = None,
    merges: int = MERGES,
) -> ModelConfig:
    """Write a model folder; its config."""
    tokenizer = Tokenizer.train(sentences or SENTENCES, merges)
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, d_model=d_model, n_layers=n_layers,
        n_heads=n_heads, d_ff=d_ff, max_context=max_context, seed=seed,
    )  # fmt: skip
    if d_model % n_heads:
        raise ValueError(f"the width {d_model} must split evenly over {n_heads} heads")
    save_model(folder, config, tokenizer)
    return config


def main(argv: list[str] | None = None) -> None:
    """The command."""
    parser = argparse.ArgumentParser(prog="python -m fabriek.model_server.build")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    try:
        config = build(
            args.folder, d_model=args.width, n_layers=args.layers, n_heads=args.heads,
            d_ff=2 * args.width, max_context=args.context, seed=args.seed,
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        parser.exit(1, f"build: {exc}\n")
    print(f"wrote {args.folder}: {config}")


if __name__ == "__main__":
    main()
