"""The GPUs of this machine, found through NVML; virtual ones where there are none.

NVML is NVIDIA's own Python binding (`nvidia-ml-py`), which loads the driver's
`libnvidia-ml.so.1` when there is one and says so when there is not. A machine without one gets
virtual GPUs: they run jobs exactly as real ones do (each job sees its own
`CUDA_VISIBLE_DEVICES`), so the whole factory can be tried on a laptop.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

import pynvml

from fabriek.domain.gpus import GPU_TYPES


@dataclass(frozen=True)
class GpuInventory:
    """The GPUs one engine hands out: `count` of type `gpu_type` (None: unknown type).

    `source` is "nvml" for real GPUs and "virtual" otherwise; `names` are the devices' own
    names where NVML gave them.
    """

    count: int
    gpu_type: str | None
    source: str
    names: tuple[str, ...] = ()


def gpu_type_from_name(name: str) -> str:
    """Our GPU type code for a device name such as 'NVIDIA H100 80GB HBM3' (-> 'h100').

    A name that matches no known type becomes a slug of itself, so it is still usable.
    """
    lowered = name.lower()
    # Longest codes first, so that a longer code is never shadowed by a shorter one in it.
    for code in sorted(GPU_TYPES, key=len, reverse=True):
        if re.search(rf"(?<![a-z0-9]){re.escape(code)}(?![0-9])", lowered):
            return code
    slug = re.sub(r"[^a-z0-9]+", "-", lowered.removeprefix("nvidia ")).strip("-")
    return slug[:20] or "gpu"


def nvml_gpu_names() -> tuple[str, ...] | None:
    """The names of this machine's NVIDIA GPUs in NVML order, or None without NVML."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:  # no driver library, or no driver loaded
        return None
    try:
        names: list[str] = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            try:
                name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(index))
            except pynvml.NVMLError:
                name = "unknown"
            names.append(name.decode(errors="replace") if isinstance(name, bytes) else name)
        return tuple(names)
    except pynvml.NVMLError:
        return None
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def discover_gpus(virtual_gpus: int, gpu_type: str | None, detect: bool = True) -> GpuInventory:
    """This machine's GPUs: real ones through NVML when `detect` finds any, else
    `virtual_gpus` virtual GPUs of `gpu_type`.

    With real GPUs the type is read from the first device's name; `gpu_type`, when given,
    overrides it (an operator may name types the way the site's users know them).
    """
    names = nvml_gpu_names() if detect else None
    if names:
        return GpuInventory(
            count=len(names),
            gpu_type=gpu_type or gpu_type_from_name(names[0]),
            source="nvml",
            names=names,
        )
    return GpuInventory(count=max(0, virtual_gpus), gpu_type=gpu_type, source="virtual")
