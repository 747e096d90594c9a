"""nag_datasets: Neuron-Activated Graph ranking for HuggingFace `datasets`."""

from __future__ import annotations

__version__ = "0.1.0"
