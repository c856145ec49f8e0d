"""The vendors' OpenAPI documents the contract tests validate against (see README.md here)."""

from pathlib import Path

SPECS = Path(__file__).resolve().parent
