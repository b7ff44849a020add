"""vLLM's command line for a replica on a GPU site: pure, so it is unit-tested here where no
GPU is.

vLLM serves the same OpenAI protocol as our CPU server (`fabriek.model_server`), on the
loopback interface only, on the port the control plane gives the job, and trusts only the
job's secret: vLLM reads it from `VLLM_API_KEY` (never from the argv, which `ps` shows).
"""

from __future__ import annotations

from dataclasses import dataclass

# The variable vLLM reads its API key from when `--api-key` is not given.
API_KEY_VARIABLE = "VLLM_API_KEY"


@dataclass(frozen=True)
class VllmOptions:
    """What one replica's `vllm serve` needs: the model's folder, the name it answers to,
    its GPUs (tensor parallel across them), and optional dtype and context length."""

    model_dir: str
    served_name: str
    gpus: int = 1
    port: str = "8000"
    host: str = "127.0.0.1"
    dtype: str | None = None
    max_model_len: int | None = None


def vllm_argv(options: VllmOptions) -> list[str]:
    """`vllm serve ...` as an argument list (no secret in it: see API_KEY_VARIABLE)."""
    if options.gpus < 1:
        raise ValueError("vLLM needs at least one GPU")
    argv = [
        "vllm", "serve", options.model_dir,
        "--host", options.host,
        "--port", options.port,
        "--served-model-name", options.served_name,
        "--tensor-parallel-size", str(options.gpus),
    ]  # fmt: skip
    if options.dtype:
        argv += ["--dtype", options.dtype]
    if options.max_model_len:
        argv += ["--max-model-len", str(options.max_model_len)]
    return argv
