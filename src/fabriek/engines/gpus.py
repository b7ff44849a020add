"""The GPUs of this machine, found through NVML; virtual ones where there are none.

NVML is loaded with ctypes from the driver's own `libnvidia-ml.so.1`, so finding GPUs needs
no Python package and works on any machine with an NVIDIA driver. A machine without one gets
virtual GPUs: they run jobs exactly as real ones do (each job sees its own
`CUDA_VISIBLE_DEVICES`), so the whole factory can be tried on a laptop.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass

from fabriek.domain.gpus import GPU_TYPES

_NVML_SUCCESS = 0
_NAME_BUFFER = 96  # NVML_DEVICE_NAME_V2_BUFFER_SIZE


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
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    try:
        if nvml.nvmlInit_v2() != _NVML_SUCCESS:
            return None
    except AttributeError:
        return None
    try:
        count = ctypes.c_uint(0)
        if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) != _NVML_SUCCESS:
            return None
        names: list[str] = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            buffer = ctypes.create_string_buffer(_NAME_BUFFER)
            if (
                nvml.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != _NVML_SUCCESS
                or nvml.nvmlDeviceGetName(handle, buffer, _NAME_BUFFER) != _NVML_SUCCESS
            ):
                names.append("unknown")
                continue
            names.append(buffer.value.decode(errors="replace"))
        return tuple(names)
    finally:
        nvml.nvmlShutdown()


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
