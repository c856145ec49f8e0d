"""One module per CRM behind the small interface in `crm_adapters.base`.

This package imports only `domain`, its SDKs and the standard library; `app/wiring.py`
builds the adapters for a running app (the registry is an explicit dict there)."""
