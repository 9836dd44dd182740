#!/usr/bin/env python
"""Write report.html into a run folder (with --figures the PNG plots too): one self-contained page with
the run's summary and config, interactive loss / accuracy / gradient-norm charts, the diagnostics, the
decision boundary (2-D data), the confusion matrix, or the parity table of a scripts/parity.py run.

scripts/train.py has it written after every run (``report.py RUN --figures``, in the background by
default); this script (re)writes it for older runs and for parity runs. The charts are Bokeh's, with its
JavaScript inlined: the page needs no network.

Exit status: 0 written; 2 bad input (no such run folder, not a run folder).
"""
from __future__ import annotations

import argparse
import os
import sys
import webbrowser
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _cli.args import ArgumentParser, CLIError, run_cli, script_entry  # noqa: E402
from _cli.rundata import require_folder  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="report.py", description=__doc__.split("\n\n")[0],
                       epilog="example:\n  python scripts/report.py runs/moons-numpy-20261122-160440 --open",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder of scripts/train.py or scripts/parity.py")
    p.add_argument("--open", action="store_true", help="open the report in the default web browser")
    p.add_argument("--figures", action="store_true",
                   help="also draw the PNG plots of a train.py run (loss, accuracy, gradient norms, diagnostics, "
                        "decision boundary): what train.py runs in the background after a run")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run report.py with ``argv`` (default sys.argv[1:]); returns the exit status."""
    return run_cli(_main, argv)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    require_folder(args.run_dir, "report.py")
    try:
        if args.figures:
            from _cli.figures import LOG, write_figures

            written, failed = write_figures(args.run_dir)
            if failed:  # one line (in train.py's background run: into figures.log, kept)
                raise CLIError(f"{args.run_dir}: not written: {'; '.join(failed)}")
            log = os.path.join(args.run_dir, LOG)  # train.py's background writer logs here: nothing went wrong
            if os.path.isfile(log) and os.path.getsize(log) == 0:
                os.remove(log)
        else:
            from _cli.html_report import write_report

            written = [os.path.basename(write_report(args.run_dir))]
    except ImportError as exc:
        raise CLIError(f"the figures need matplotlib and Bokeh ({exc.name} is missing): "
                       f"pip install -e \".[scripts]\"") from None
    except OSError as exc:
        raise CLIError(f"cannot write into {args.run_dir}: {exc.strerror or exc}") from None
    path = os.path.join(args.run_dir, "report.html")
    if not args.quiet:
        print(f"wrote {' '.join(written)} in {args.run_dir} (report.html: {os.path.getsize(path) / 1e3:,.0f} kB)")
    if args.open:
        webbrowser.open(Path(os.path.abspath(path)).as_uri())
    return 0


if __name__ == "__main__":
    script_entry(main)
