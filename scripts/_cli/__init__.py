"""What scripts/train.py and scripts/parity.py share (not part of the library), one concern per module.

- :mod:`.startup`: the handlers a script installs before its heavy imports (a signal then is one line too).
- :mod:`.args`: argument parsing and value types, CLIError, running a script (one-line errors, exit
  statuses, signals), checking flag values saved in a checkpoint.
- :mod:`.data`: datasets (built-in, the XOR truth table, CSV, NPZ) and their flags.
- :mod:`.prepare`: task detection, splits (0: none), standardization (:class:`~.prepare.Prepared`).
- :mod:`.model`: the network from the model flags or ``--arch``, and its description.
- :mod:`.training`: optimizer, schedule, batch, fit's keyword arguments, the learning-rate finder, the
  progress bar.
- :mod:`.resume`: train.py's ``--resume`` (the checkpoint, the flags it fixes, its data and model).
- :mod:`.summary`: the summary train.py prints.
- :mod:`.distributed`: ``--distributed`` (MPI ranks train together; rank 0 writes the outputs).
- :mod:`.runmodel`: the saved model (model.npz + model.json) and loading it back.
- :mod:`.report`: metrics, history records, the summary's metric and diagnostics text, number formatting.
- :mod:`.plots`: matplotlib figures.
- :mod:`.runfolder`: the output folder (tried before training), its files (written through
  :mod:`xpnet.io.atomic`), environment, and what a failed write leaves.
- :mod:`.rundata`: a run folder read back (its JSON files, its data) for the pages.
- :mod:`.viz_data`: the visualizer's numbers, from xpnet's own layers; :mod:`.html_report`: report.html
  (Bokeh); :mod:`.pages`: templates (``templates/``) filled with inline data.

The scripts put the repository root and ``scripts/`` on ``sys.path`` before importing this package.
"""
