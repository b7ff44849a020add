"""NVML energy counter against integrated power samples, on a fixed matrix-multiply load.

On a machine with an NVIDIA GPU (Volta or newer: the total-energy counter needs it) this runs
square BF16/FP16 matrix multiplies on GPU 0 for `--seconds` while the main thread samples the
board power (`nvmlDeviceGetPowerUsage`, mW) at about `--hz`, and reads the cumulative energy
counter (`nvmlDeviceGetTotalEnergyConsumption`, mJ) at the start and the end of the same
window. It prints both energies and their relative difference (the aim is <= 5 %).

    .venv/bin/python -m bench.nvml_energy --seconds 30 --hz 10

Needs `nvidia-ml-py` (imported as `pynvml`) and torch or cupy; none of them is a Fabriek
dependency. Where NVML, a GPU or a load library is missing it prints one line saying why
and exits 0, so it is safe to run anywhere.

Power samples are integrated with the trapezoidal rule. On recent drivers the power reading
of some GPUs (Hopper and newer) is itself an average over about a second, so a short run
differs more at the edges; the counter is the figure Fabriek's metering uses.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import platform
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, NoReturn


def skip(reason: str) -> NoReturn:
    print(f"nvml_energy: skipped: {reason}")
    sys.exit(0)


def optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except Exception:  # absent, or present but broken (no driver): both mean "cannot use"
        return None


def make_load(size: int) -> tuple[str, Callable[[threading.Event], int]]:
    """A function that multiplies two size × size matrices on GPU 0 until told to stop."""
    torch = optional("torch")
    if torch is not None and torch.cuda.is_available():

        def run_torch(stop: threading.Event) -> int:
            a = torch.randn(size, size, device="cuda:0", dtype=torch.bfloat16)
            b = torch.randn(size, size, device="cuda:0", dtype=torch.bfloat16)
            n = 0
            while not stop.is_set():
                for _ in range(10):
                    a @ b
                torch.cuda.synchronize()  # keep the queue short, so stopping is prompt
                n += 10
            return n

        return f"torch {torch.__version__}, bf16", run_torch
    cupy = optional("cupy")
    if cupy is not None:

        def run_cupy(stop: threading.Event) -> int:
            with cupy.cuda.Device(0):
                a = cupy.random.standard_normal((size, size), dtype=cupy.float32).astype(
                    cupy.float16
                )
                b = cupy.random.standard_normal((size, size), dtype=cupy.float32).astype(
                    cupy.float16
                )
                n = 0
                while not stop.is_set():
                    for _ in range(10):
                        a @ b
                    cupy.cuda.Device(0).synchronize()
                    n += 10
                return n

        return f"cupy {cupy.__version__}, fp16", run_cupy
    skip("neither torch (with CUDA) nor cupy is installed; install one to run the load")


def trapezoid_joules(samples: list[tuple[float, float]]) -> float:
    """Energy from (seconds, watts) samples in time order."""
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in itertools.pairwise(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--hz", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=8192, help="matrix side")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of load before measuring"
    )
    args = parser.parse_args()

    pynvml = optional("pynvml")
    if pynvml is None:
        skip("pynvml is not installed (pip install nvidia-ml-py)")
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        skip(f"NVML cannot start (no NVIDIA driver or GPU here): {exc}")
    try:
        if pynvml.nvmlDeviceGetCount() == 0:
            skip("NVML sees no GPU")
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except pynvml.NVMLError as exc:
            skip(f"GPU 0 ({name}) has no total-energy counter: {exc}")
        result = measure(pynvml, handle, args)
        result.update(
            gpu=name if isinstance(name, str) else name.decode(),
            driver=_text(pynvml.nvmlSystemGetDriverVersion()),
            python=platform.python_version(),
            command=" ".join(["python -m bench.nvml_energy", *sys.argv[1:]]),
        )
        print(json.dumps(result, indent=2))
    finally:
        pynvml.nvmlShutdown()


def _text(v: Any) -> str:
    return v if isinstance(v, str) else bytes(v).decode()


def measure(pynvml: Any, handle: Any, args: argparse.Namespace) -> dict[str, Any]:
    library, load = make_load(args.size)
    stop = threading.Event()
    done: dict[str, int] = {}
    worker = threading.Thread(target=lambda: done.update(n=load(stop)), daemon=True)
    worker.start()
    time.sleep(args.warmup)  # clocks and power settle before the window opens

    period = 1.0 / args.hz
    samples: list[tuple[float, float]] = []
    start_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    t0 = time.monotonic()
    samples.append((0.0, pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0))
    next_at = t0 + period
    while (now := time.monotonic()) - t0 < args.seconds:
        time.sleep(max(0.0, next_at - now))
        samples.append((time.monotonic() - t0, pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0))
        next_at += period
    end_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    window = time.monotonic() - t0
    stop.set()
    worker.join(timeout=30)

    counter_j = (end_mj - start_mj) / 1000.0  # one window, no reset expected: a plain difference
    sampled_j = trapezoid_joules(samples)
    return {
        "library": library,
        "matrix_side": args.size,
        "window_s": round(window, 3),
        "samples": len(samples),
        "mean_power_w": round(sampled_j / samples[-1][0], 1) if samples[-1][0] > 0 else None,
        "counter_j": round(counter_j, 1),
        "integrated_power_j": round(sampled_j, 1),
        "relative_difference": round((sampled_j - counter_j) / counter_j, 4) if counter_j else None,
        "matmuls": done.get("n"),
    }


if __name__ == "__main__":
    main()
