"""`python -m fabriek.model_server --model DIR --port PORT`: serve a model folder over the
OpenAI protocol (see server.py)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m fabriek.model_server")
    parser.add_argument("--model", required=True, help="the model folder")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--served-model-name", default=None, help="default: the folder's name")
    parser.add_argument(
        "--api-key-env", default=None, help="the variable holding the secret callers present"
    )
    parser.add_argument("--max-running", type=int, default=4, help="generations at once")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Load the model and serve it until stopped."""
    args = parse(argv)
    secret = None
    if args.api_key_env:
        secret = os.environ.get(args.api_key_env)
        if not secret:
            sys.exit(f"model server: {args.api_key_env} is not set; it must hold the API key")
    import uvicorn

    from fabriek.model_server.model import load_model
    from fabriek.model_server.server import ModelServer

    folder = Path(args.model)
    try:
        loaded = load_model(folder)
    except (OSError, ValueError, KeyError) as exc:
        sys.exit(f"model server: cannot load {folder}: {exc}")
    app = ModelServer(loaded, args.served_model_name or folder.name, secret, args.max_running)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
