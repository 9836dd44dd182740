"""Parsing flags, and running a script: every user error is one ``error: ...`` line and exit status 2.

A user error is a :class:`CLIError`, or a ``ValueError`` / ``backends.BackendUnavailable`` from the
library; :func:`run_cli` prints it as one line. Ctrl-C and SIGTERM stop with 130 / 143, an output
that cannot be written with 3 (:data:`WRITE_FAILED`).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import warnings
from typing import Any, Callable, Sequence

import backends

from .startup import signal_name, stopped_line  # noqa: F401 - signal_name: the scripts import it from here


WRITE_FAILED = 3  # exit status: an output could not be written (disk full, no permission)


class CLIError(Exception):
    """A user error: printed as one ``error: ...`` line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one ``error: ...`` line (exit 2), like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _number(text: str, kind: Callable[[str], Any]) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None


def positive_int(text: str) -> int:
    v = _number(text, int)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return v


def non_negative_int(text: str) -> int:
    v = _number(text, int)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return v


def positive_float(text: str) -> float:
    v = _number(text, float)
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return v


def non_negative_float(text: str) -> float:
    v = _number(text, float)
    if not (v >= 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return v


def fraction(text: str) -> float:
    v = _number(text, float)
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction strictly between 0 and 1, got {text!r}")
    return v


def split_fraction(text: str) -> float:
    """A share of the data for a split: 0 (no such split) up to, not including, 1."""
    v = _number(text, float)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1) (0: no such split), got {text!r}")
    return v


FULL_BATCH = "full"  # --batch-size full: every training row in one step
AUTO_LR = "auto"  # --lr auto: the learning-rate finder's suggestion


def batch_size(text: str) -> int | str:
    """A mini-batch size >= 1, or "full" (one batch of every training row)."""
    return FULL_BATCH if text.strip().lower() == FULL_BATCH else positive_int(text)


def learning_rate(text: str) -> float | str:
    """A learning rate > 0, or "auto" (run the learning-rate finder first)."""
    return AUTO_LR if text.strip().lower() == AUTO_LR else positive_float(text)


def dropout_rate(text: str) -> float:
    v = _number(text, float)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must be a rate in [0, 1), got {text!r}")
    return v


MAX_DEPTH = 1000  # --hidden WIDTHxDEPTH: at most this many layers in one part


def hidden_sizes(text: str) -> list[int]:
    """``"64,32"`` -> [64, 32]; ``"64x3,8"`` -> [64, 64, 64, 8] (WIDTHxDEPTH repeats a width);
    ``""`` or ``"none"`` -> [] (no hidden layer)."""
    if text.strip().lower() in ("", "none"):
        return []
    sizes = []
    for part in text.split(","):
        width, _, depth = part.strip().lower().partition("x")
        depth = depth if _ else "1"
        if not (width.isdecimal() and depth.isdecimal()) or int(width) < 1 or not 1 <= int(depth) <= MAX_DEPTH:
            raise argparse.ArgumentTypeError(f"hidden sizes must be positive integers separated by commas, a width "
                                             f"repeated as WIDTHxDEPTH (depth 1-{MAX_DEPTH}) (e.g. 64,32 or 64x20), "
                                             f"got {text!r}")
        sizes += [int(width)] * int(depth)
    return sizes


def explicit_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> dict:
    """The flags given on the command line (dest -> parsed value); defaults are left out."""
    defaults = [(a, a.default) for a in parser._actions]
    try:
        for a, _ in defaults:
            a.default = argparse.SUPPRESS
        return vars(parser.parse_args(argv))
    finally:
        for a, d in defaults:
            a.default = d


def check_saved_settings(parser: argparse.ArgumentParser, settings: dict, where: str,
                         nullable: Sequence[str] = ()) -> None:
    """CLIError unless every saved flag value (``settings``: dest -> value, e.g. from a checkpoint) is one
    the flag itself accepts: a bool for a switch, one of its choices, a value its type parses back to the
    same value, a string for a plain flag; None where the default is None or the flag is in ``nullable``."""
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    for dest, value in settings.items():
        a = actions.get(dest)
        if a is None:
            continue
        flag = a.option_strings[-1]
        if value is None:
            ok = a.default is None or dest in nullable
        elif a.nargs == 0:  # a switch: store_true / store_false
            ok = isinstance(value, bool)
        elif a.choices is not None:
            ok = isinstance(value, str) and value in a.choices
        elif a.type is not None:
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            try:
                ok = not isinstance(value, (bool, dict)) and a.type(text) == value
            except (argparse.ArgumentTypeError, ValueError, TypeError):
                ok = False
        else:
            ok = isinstance(value, str)
        if not ok:
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise CLIError(f"{where} {flag} is {shown}, which {flag} does not accept")


# ---------------------------------------------------------------- running a script
class Terminated(KeyboardInterrupt):
    """SIGTERM outside a training step (the scripts' handler raises it): handled like Ctrl-C, exit 143."""

    signum = signal.SIGTERM


def _terminated(signum: int, frame: Any) -> None:
    raise Terminated("SIGTERM")


def error_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"error: {text}"


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run ``main`` turning user errors into one ``error: ...`` line and exit status 2.

    CLIError, backends.BackendUnavailable and ValueError (which the library raises for bad
    arguments) -> 2; argparse's exits (--help, usage errors) -> their status; a
    KeyboardInterrupt not handled by ``main`` -> 130 (143 for :class:`Terminated`, i.e. SIGTERM); an
    OSError (an output that could not be written: disk full, no permission) -> :data:`WRITE_FAILED`.
    Set XPNET_DEBUG=1 to get the traceback instead.
    """
    debug = os.environ.get("XPNET_DEBUG", "") not in ("", "0")
    try:
        return main(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except (CLIError, backends.BackendUnavailable, ValueError) as exc:
        if debug:
            raise
        print(error_line(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return _stopped(exc)
    except OSError as exc:  # reading input is checked where it happens: this is an output that could not be saved
        if debug:
            raise
        what = os.path.basename(exc.filename) if exc.filename else "an output file"
        print(f"error: could not save {what} ({exc.strerror or exc}); the files written before it are kept",
              file=sys.stderr)
        return WRITE_FAILED


def _stopped(exc: BaseException) -> int:
    signum = int(getattr(exc, "signum", 0) or signal.SIGINT)
    print(stopped_line(signum), file=sys.stderr)
    return 128 + signum


def script_entry(main: Callable[[list[str] | None], int]) -> None:
    """``if __name__ == "__main__"`` body: Ctrl-C raises KeyboardInterrupt even when a parent
    started us with SIGINT ignored, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt: the
    same clean stop, exit status 143), then exit with main's status."""
    try:  # until main's own handling starts (and after it ends), a signal is still one line
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
                signal.signal(signal.SIGTERM, _terminated)
        # A diverging run overflows (NumPy warns at every op); fit reports it as TrainingStopped instead.
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"xpnet(\.|$)")
        status = main(None)
    except KeyboardInterrupt as exc:
        status = _stopped(exc)
    sys.exit(status)
