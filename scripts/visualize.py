#!/usr/bin/env python
"""Write the interactive backprop visualizer: one self-contained HTML page for a small network.

By default the tutorials' 2-2-1 sigmoid network learning XOR with full-batch SGD; with --run a
train.py run folder's model (at most 8 units per layer). The page steps through one forward and
backward pass on one example (next, previous, play, reset, or the keys), shows each equation
with its numbers, and replays the training over the epochs with a slider. Every number on the
page is computed here by xpnet's own layers (see scripts/_cli/viz_data.py); the page only shows
them and needs no network access.

Exit status: 0 written; 2 bad input (a missing run folder, a model too large to draw, ...).
"""
from __future__ import annotations

import argparse
import os
import sys
import webbrowser

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _cli.args import ArgumentParser, CLIError, positive_float, positive_int, run_cli, script_entry  # noqa: E402
from _cli.pages import render, write_page  # noqa: E402
from _cli.viz_data import MAX_UNITS, run_payload, tutorial_payload  # noqa: E402

EXAMPLES = """examples:
  python scripts/visualize.py --open                      # XOR on the 2-2-1 sigmoid network
  python scripts/visualize.py --run runs/xor-numpy-20261122-160440 --out xor.html
  python scripts/visualize.py --hidden 3 --activation tanh --epochs 2000 --lr 0.5
"""


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="visualize.py", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", metavar="RUN_DIR",
                   help=f"a scripts/train.py run folder: draw its model (at most {MAX_UNITS} units per layer) on its "
                        "first test examples; the frames are its checkpoint-NNNN.npz files and its final weights")
    p.add_argument("--out", metavar="FILE.html",
                   help="where to write the page (default runs/visualizer-xor.html, or RUN_DIR/visualizer.html)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    g = p.add_argument_group("the XOR network (without --run)")
    g.add_argument("--hidden", type=positive_int, default=2, metavar="N",
                   help=f"hidden units (default 2, at most {MAX_UNITS})")
    g.add_argument("--activation", default="sigmoid", choices=("sigmoid", "tanh", "relu", "leaky_relu", "gelu"),
                   help="hidden activation (default sigmoid)")
    g.add_argument("--lr", type=positive_float, default=1.0, help="SGD learning rate (default 1.0)")
    g.add_argument("--epochs", type=positive_int, default=3000, help="full-batch epochs (default 3000)")
    g.add_argument("--frames", type=positive_int, default=101,
                   help="snapshots of the weights for the training slider (default 101)")
    g.add_argument("--seed", type=int, default=0, help="seed of the initial weights (default 0)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run visualize.py with ``argv`` (default sys.argv[1:]); returns the exit status."""
    return run_cli(_main, argv)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run is not None:
        data = run_payload(args.run)
        out = args.out or os.path.join(args.run, "visualizer.html")
    else:
        if args.hidden > MAX_UNITS:
            raise CLIError(f"--hidden {args.hidden}: the visualizer draws at most {MAX_UNITS} units per layer")
        data = tutorial_payload(args.hidden, args.activation, args.seed, args.lr, args.epochs, args.frames)
        out = args.out or os.path.join("runs", "visualizer-xor.html")
    try:
        write_page(out, render("visualizer.html", data["meta"]["title"], data))
    except OSError as exc:
        raise CLIError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"xpnet visualizer: {data['meta']['title']}; {len(data['frames'])} frame(s), {len(data['steps'])} steps "
          f"per pass\n  wrote {out} ({os.path.getsize(out) / 1e3:,.0f} kB)")
    if args.open:
        webbrowser.open(_file_url(out))
    return 0


def _file_url(path: str) -> str:
    from pathlib import Path

    return Path(os.path.abspath(path)).as_uri()


if __name__ == "__main__":
    script_entry(main)
