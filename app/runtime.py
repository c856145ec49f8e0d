"""What a request or a job reads from the running app: the settings object `create_app` bound."""

from __future__ import annotations

from flask import current_app

from app.settings import Settings

SETTINGS_KEY = "paydeck.settings"


def get_settings() -> Settings:
    return current_app.extensions[SETTINGS_KEY]
