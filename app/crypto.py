"""Secrets at rest: OAuth tokens and webhook passwords are Fernet-encrypted in the database."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

EXTENSION_KEY = "paydeck.cipher"


class ConfigurationError(RuntimeError):
    """Paydeck cannot start with the configuration it was given."""


def build_cipher(keys: list[str]) -> MultiFernet:
    """A MultiFernet: the first key encrypts, every key decrypts (rotation)."""
    if not keys:
        raise ConfigurationError("ENCRYPTION_KEYS is empty")
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            "ENCRYPTION_KEYS must be comma-separated Fernet keys "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        ) from exc


def generate_key() -> str:
    return Fernet.generate_key().decode()


def _cipher() -> MultiFernet:
    return current_app.extensions[EXTENSION_KEY]


class EncryptedText(TypeDecorator[str]):
    """A text column stored encrypted; reads return the plain text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return _cipher().encrypt(value.encode()).decode()

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        try:
            return _cipher().decrypt(value.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError(
                "a stored secret cannot be decrypted with ENCRYPTION_KEYS (was a key removed?)"
            ) from exc
