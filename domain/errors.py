"""The base of the vendors' call errors."""

from __future__ import annotations


class VendorError(Exception):
    """A vendor refused or failed a call; `status` is its HTTP status when it answered."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status
