"""Reading the store, never training: the comparison table and its verdicts, exports, the
best run, figures, reports, samples from checkpoints and the MLflow UI.

table (groups of runs -> one row per configuration with verdicts), export (formats),
best (best run, best variant and its ready-to-run command), plots, report (Jinja2
templates), sample, ui. Nothing here imports the strategies (baseline, ablate, search,
runner).
"""
