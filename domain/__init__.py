"""Paydeck's bottom floor: plain types and helpers shared by every layer.

Standard library only: no I/O, no Flask, SQLAlchemy, Redis or vendor SDKs, and nothing of
Paydeck's own. `xero/` and `crm_adapters/` import this and nothing above it
(docs/architecture.md, "Layers"; tests/test_layers.py).
"""
