"""GPU types as reference data, from the vendors' data sheets.

Peak BF16 figures are *dense* (without structured sparsity), the figure that matters for
training-compute estimates. Sources:
- NVIDIA H100 SXM5 80GB: NVIDIA H100 Tensor Core GPU data sheet (2023): 80 GB HBM3,
  up to 700 W, BF16 Tensor Core 1,979 TFLOPS with sparsity, so 989.5 dense.
- NVIDIA H200 SXM 141GB: NVIDIA H200 Tensor Core GPU data sheet (2024): 141 GB HBM3e,
  up to 700 W, BF16 1,979 TFLOPS with sparsity, so 989.5 dense.
- NVIDIA A100 80GB SXM: NVIDIA A100 Tensor Core GPU data sheet (2021): 80 GB HBM2e, 400 W,
  BF16 312 TFLOPS dense (624 with sparsity).
- NVIDIA L40S: NVIDIA L40S GPU data sheet (2023): 48 GB GDDR6, 350 W, BF16 362.05 TFLOPS
  dense (733 with sparsity).
- AMD Instinct MI300X: AMD Instinct MI300X data sheet (2023): 192 GB HBM3, 750 W,
  BF16 1,307.4 TFLOPS dense (2,614.9 with sparsity).
"""

from __future__ import annotations

from dataclasses import dataclass

from fabriek.domain.units import FlopPerSecond


@dataclass(frozen=True)
class GpuType:
    """One GPU model: what a site has and a job asks for."""

    code: str  # what users type: `--gpu-type h100`
    name: str
    vendor: str
    memory_gb: int
    tdp_w: int
    peak_bf16_tflops: float  # dense, without structured sparsity
    # Where the peak figure comes from: cited in every compute estimate that uses it.
    source: str = ""

    @property
    def peak_bf16(self) -> FlopPerSecond:
        """Dense BF16 peak: what hardware-based training-compute estimates multiply by."""
        return FlopPerSecond(self.peak_bf16_tflops * 1e12)


GPU_TYPES: dict[str, GpuType] = {
    g.code: g
    for g in (
        GpuType("h100", "NVIDIA H100 SXM5 80GB", "NVIDIA", 80, 700, 989.5,
                "NVIDIA H100 Tensor Core GPU data sheet (2023): BF16 1,979 TFLOPS with sparsity"),
        GpuType("h200", "NVIDIA H200 SXM 141GB", "NVIDIA", 141, 700, 989.5,
                "NVIDIA H200 Tensor Core GPU data sheet (2024): BF16 1,979 TFLOPS with sparsity"),
        GpuType("a100", "NVIDIA A100 80GB SXM", "NVIDIA", 80, 400, 312.0,
                "NVIDIA A100 Tensor Core GPU data sheet (2021): BF16 312 TFLOPS dense"),
        GpuType("l40s", "NVIDIA L40S", "NVIDIA", 48, 350, 362.05,
                "NVIDIA L40S GPU data sheet (2023): BF16 362.05 TFLOPS dense"),
        GpuType("mi300x", "AMD Instinct MI300X", "AMD", 192, 750, 1307.4,
                "AMD Instinct MI300X data sheet (2023): BF16 1,307.4 TFLOPS dense"),
    )
}  # fmt: skip


def gpu_type(code: str) -> GpuType | None:
    """The GPU type with this code, case-insensitively, or None."""
    return GPU_TYPES.get(code.strip().lower())
