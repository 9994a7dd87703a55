"""The interpbench Dash app: runs, causal graphs, patching heatmaps and SAE features.

``interpbench app --runs cache/runs`` serves it (see :mod:`apps.server`). The app reads only
the on-disk run formats (``result.json``, graph JSON, ``features.jsonl``) under the runs
directory it was started on; importing this package reads nothing and starts nothing.
"""
