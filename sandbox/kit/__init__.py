"""The fake-vendor kit: what every fake shares (standard library and werkzeug only); its
modules are listed in docs/architecture.md."""
