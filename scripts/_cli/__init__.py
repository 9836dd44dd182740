"""What scripts/train.py and scripts/parity.py share (not part of the library), one concern per module.

- :mod:`.args`: argument parsing and value types, CLIError, running a script (one-line errors, exit
  statuses, signals).
- :mod:`.data`: datasets (built-in, CSV, NPZ) and their flags.
- :mod:`.prepare`: task detection, splits, standardization (:class:`~.prepare.Prepared`).
- :mod:`.model`: the network from the model flags or ``--arch``, and its description.
- :mod:`.training`: optimizer, schedule, fit's keyword arguments, the progress bar.
- :mod:`.runmodel`: the saved model (model.npz + model.json) and loading it back.
- :mod:`.report`: metrics, history records, number formatting.
- :mod:`.plots`: matplotlib figures.
- :mod:`.runfolder`: the output folder, its files (written through :mod:`xpnet.io.atomic`), environment.

The scripts put the repository root and ``scripts/`` on ``sys.path`` before importing this package.
"""
