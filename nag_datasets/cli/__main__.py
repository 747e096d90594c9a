"""``python -m nag_datasets.cli``."""

from __future__ import annotations

import sys

from .app import main

sys.exit(main())
