"""The loopback sandbox's one exception to https: which hosts are loopback, and letting
requests-oauthlib (which refuses plain http) talk to them."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(url: str) -> bool:
    """Whether `url`'s host is this machine."""
    return urlsplit(url).hostname in LOOPBACK


def allow_plain_http_on_loopback(url: str) -> None:
    """oauthlib refuses http:// token URLs; allow them only for the loopback sandbox and tests."""
    if urlsplit(url).scheme == "http" and is_loopback(url):
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
