"""What the Hub's client raises and how to report it without leaking a token: shared by downloads and uploads.

>>> scrub_token("401 for token hf_abc", "hf_abc")
'401 for token ***'
"""

from __future__ import annotations

__all__ = ["hub_errors", "scrub_token"]


def hub_errors() -> tuple[type[BaseException], ...]:
    """What a Hub call raises when it cannot be done: HTTP and transport errors, offline mode, invalid ids."""
    from huggingface_hub.errors import HTTPError

    return (HTTPError, OSError, ValueError)


def scrub_token(text: str, token: str) -> str:
    """``text`` with every occurrence of ``token`` replaced by ``***``."""
    return text.replace(token, "***") if token else text
