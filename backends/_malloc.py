"""Keep glibc from handing freed heap memory back to the kernel after every training step.

A training step allocates and frees the same few hundred-kilobyte temporaries every time.
With glibc's defaults, freeing them trims the top of the heap, so the next step faults
fresh zeroed pages back in; on virtual machines a page fault costs microseconds. Measured
here, raising M_TRIM_THRESHOLD made a 256x512 dropout mask ~3x cheaper (1.4 ms -> 0.47 ms)
and kept the large benchmark steady. (Also raising M_MMAP_THRESHOLD made the mask cheaper
still but the large benchmark slower and erratic from repeat to repeat, so it is left alone.)
Process-wide and glibc-only; any failure leaves malloc as it was.
Set XPNET_MALLOC_TUNING=0 to leave malloc alone.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_TRIM = 256 << 20  # keep up to 256 MiB of freed heap mapped
_result: bool | None = None  # None: not tried yet in this process


def tune() -> bool:
    """Apply the settings once per process; True if glibc accepted them (later calls repeat the answer)."""
    global _result
    if _result is None:
        _result = _apply()
    return _result


def _apply() -> bool:
    if os.environ.get("XPNET_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, _TRIM))
