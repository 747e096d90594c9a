"""nag_datasets: Neuron-Activated Graph ranking for HuggingFace `datasets`.

>>> import nag_datasets
>>> "NAGFeaturizer" in nag_datasets.__all__
True
"""

from __future__ import annotations

__version__ = "0.1.0"

from .columns import attach_spec, get_spec
from .featurizer import FeaturizeReport, NAGFeaturizer
from .models import load_model
from .profile import NAGProfile
from .select import combine_with_quality, count_tokens, select_multi_target, select_top_fraction
from .spec import SignatureSpec, SpecError, SpecMismatchError

__all__ = [
    "FeaturizeReport",
    "NAGFeaturizer",
    "NAGProfile",
    "SignatureSpec",
    "SpecError",
    "SpecMismatchError",
    "attach_spec",
    "combine_with_quality",
    "count_tokens",
    "get_spec",
    "load_model",
    "select_multi_target",
    "select_top_fraction",
]
