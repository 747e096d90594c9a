"""Research code of the nag_datasets project, kept outside the installed library (it is not in the wheel).

- :mod:`nag_research.evaluate`: the retrieval evaluation harness and its baselines (``python -m
  nag_research.evaluate --config small --out DIR`` from a checkout).
- :mod:`nag_research.experiments`: the small-scale pretraining experiment (``python -m
  nag_research.experiments.pretrain``).
- :mod:`nag_research.corpora`: Debian text sources (GCIDE, WordNet, KJV) read for analyses.
- :mod:`nag_research.analysis`: layer and width subsets, Dice distances, neuron deactivation, measurements, text
  sets, clustering, retrieval metrics and the notebook runner the notebooks use.

Importable from a checkout: the tests put ``benchmarks`` on ``sys.path`` (``pythonpath`` in ``setup.cfg``), the
notebooks' first cell does the same, and the benchmark scripts run from this folder.
"""
