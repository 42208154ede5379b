"""What a heavy stage used: peak memory (printed with its time at the end of the stage)."""

from __future__ import annotations

import resource
import sys


def peak_memory_mb() -> float:
    """Peak GPU memory allocated (CUDA) or peak resident memory of this process (CPU), in MiB."""
    torch = sys.modules.get("torch")  # only a process that imported torch can have used a GPU
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
