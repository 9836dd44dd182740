"""What a script runs first, before its heavy imports: until :func:`~.args.script_entry` takes over,
Ctrl-C or SIGTERM (e.g. while NumPy, PyTorch or scikit-learn import) ends the process with the
one-line message and status 130 / 143 instead of a traceback. Imports nothing but the standard library."""
from __future__ import annotations

import os
import signal
from typing import Any


def signal_name(signum: int) -> str:
    """How a message names the signal: "Ctrl-C" for SIGINT, else its name."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def stopped_line(signum: int) -> str:
    """The message of a run stopped by a signal outside training."""
    return f"interrupted ({signal_name(signum)}): stopped"


def _stop(signum: int, frame: Any) -> None:
    try:
        os.write(2, (stopped_line(signum) + "\n").encode())
    finally:
        os._exit(128 + signum)  # nothing is written yet: no clean-up to run


def stop_on_signals() -> None:
    """Install the start-up handlers (SIGTERM only where it is not ignored)."""
    signal.signal(signal.SIGINT, _stop)
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        signal.signal(signal.SIGTERM, _stop)
