"""Peak FLOP rates for MFU: published numbers for accelerators, a measured matmul for CPUs."""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp

# Dense peak per device (FLOP/s) by device_kind substring; bf16 where the tier computes in bf16.
PEAKS_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10G": 125e12,
              "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12,
              "TPU v6": 918e12}
PEAKS_F32 = {"H100": 67e12, "H200": 67e12, "A100": 19.5e12, "L4": 30e12, "A10G": 31e12}


@functools.lru_cache(maxsize=None)
def measured_matmul_peak(n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` f32 n×n matmuls on the default device."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def peak_flops(compute_dtype: str) -> tuple[float, str]:
    """(peak FLOP/s per device, where the number comes from)."""
    device = jax.devices()[0]
    table = PEAKS_BF16 if compute_dtype == "bfloat16" else PEAKS_F32
    for kind, peak in table.items():
        if kind.lower() in device.device_kind.lower():
            return peak, f"{kind} {compute_dtype} spec"
    return measured_matmul_peak(), f"measured f32 matmul on {device.device_kind}"


def compiled_cost(compiled) -> tuple[float, float]:
    """(per-device MB, FLOPs) of a compiled computation, from XLA's own analyses: memory is
    arguments + outputs + temporaries − what donation aliases."""
    mem = compiled.memory_analysis()
    total = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
             - mem.alias_size_in_bytes)
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return total / 2**20, float(cost.get("flops", 0.0))
