"""The CPU thread count of the array libraries, for one process (``train.py --threads N``)."""
from __future__ import annotations

import os
import sys

from ._torch import THREADS_ENV

_limits = []  # threadpoolctl's handle, kept for the life of the process


def set_threads(n: int) -> dict:
    """Use ``n`` CPU threads: torch's (through ``$XPNET_THREADS``, read whenever a torch backend is made,
    and at once if torch is imported) and the BLAS/OpenMP pools of NumPy and others through threadpoolctl
    when it is installed. Returns what was set: ``{"torch": n, "blas": n or None}`` (None: no threadpoolctl)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be an integer >= 1, got {n!r}")
    os.environ[THREADS_ENV] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return {"torch": n, "blas": None}
    _limits.append(threadpool_limits(limits=n))
    return {"torch": n, "blas": n}
