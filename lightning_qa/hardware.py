"""What this CPU runs natively, so a precision that would be slower than fp32 here is named once.

bf16 on a CPU is fast only with AMX tiles (Sapphire Rapids and later) or AVX-512 BF16 (Cooper Lake, Zen 4
and later); elsewhere PyTorch emulates it and bf16 runs several times *slower* than fp32 (issue 16: 5x on an
AVX2-only EPYC). `torch.backends.cpu.get_cpu_capability()` says "AVX512" for both kinds, so the two private
probes below are the only reliable answer PyTorch gives.
"""

from __future__ import annotations

import os
import platform
import warnings
from typing import Any

import torch

_warned = False


def _cpuinfo(key: str) -> str | None:
    """The first `key` line of /proc/cpuinfo (Linux), else None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU model as the kernel names it ("AMD EPYC 9R14 ..."), else the platform's processor string."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The kernel's CPU feature flags (Linux), else an empty set."""
    return set((_cpuinfo("flags") or "").split())


def _probe(name: str) -> bool:
    """One of torch.cpu's private capability probes (False where this torch lacks it)."""
    return bool(getattr(torch.cpu, name, lambda: False)())


def native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (AMX tiles or AVX-512 BF16)."""
    return _probe("_is_amx_tile_supported") or _probe("_is_avx512_bf16_supported")


def cpu_info() -> dict[str, Any]:
    """The CPU model and the capabilities that decide which precision is fastest on it."""
    return {
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "amx": _probe("_is_amx_tile_supported"),
        "avx512_bf16": _probe("_is_avx512_bf16_supported"),
        "vnni": bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"}),
    }


def cpu_line() -> str:
    """One line for a benchmark's output: the CPU and what decides its fastest precision."""
    i = cpu_info()
    yes = {True: "yes", False: "no"}
    return (
        f"CPU: {i['cpu']} ({i['cpus']} CPUs, torch {i['torch_capability']}; AMX {yes[i['amx']]}, "
        f"AVX-512 BF16 {yes[i['avx512_bf16']]}, VNNI {yes[i['vnni']]})"
    )


def warn_if_slow_bf16(dtype: Any, device: torch.device | str = "cpu") -> bool:
    """Warn (once per process) that bf16 on this CPU will be slower than fp32; True if it warned."""
    global _warned
    is_bf16 = dtype == torch.bfloat16 or str(dtype).startswith("bf16")
    if _warned or not is_bf16 or torch.device(device).type != "cpu" or native_bf16():
        return False
    _warned = True
    warnings.warn(
        f"bf16 on this CPU ({cpu_name()}) is emulated: it has neither AMX nor AVX-512 BF16, so bf16 will be "
        "slower than fp32 here. Use fp32, or int8 for inference (quantize='int8').",
        stacklevel=3,
    )
    return True
