"""Selection: keep the best-scoring documents within a token budget.

``budget`` (the bisection budget cut), ``budgeted`` (``select_top_fraction``, multi-target, quality mixing),
``recipe`` (the provenance a selection carries), ``scored`` (a scored pool: every row and its score),
``ray_select`` (the same selection on Ray Data).
"""
