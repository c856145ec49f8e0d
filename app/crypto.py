"""Secrets at rest: OAuth tokens and webhook passwords are Fernet-encrypted in the database."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from sqlalchemy import MetaData, Text, select, update
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.engine import Dialect, Engine
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



def rotate_stored_secrets(engine: Engine, metadata: MetaData, cipher: MultiFernet) -> int:
    """Re-encrypt every stored secret (every EncryptedText column of every table) under the
    first of ENCRYPTION_KEYS (`MultiFernet.rotate`), in one transaction; afterwards the old
    keys can be dropped from ENCRYPTION_KEYS. Returns how many values were rewritten."""
    rotated = 0
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            keys = [c.name for c in table.primary_key.columns]
            for name in [c.name for c in table.columns if isinstance(c.type, EncryptedText)]:
                # Lightweight table(): untyped columns, so the stored ciphertext is read and
                # written as it is, not through EncryptedText.
                raw = sa_table(table.name, *[sa_column(k) for k in keys], sa_column(name))
                rows = conn.execute(select(raw).where(raw.c[name].is_not(None))).all()
                for row in rows:
                    try:
                        fresh = cipher.rotate(str(row[-1]).encode()).decode()
                    except InvalidToken as exc:
                        raise ConfigurationError(
                            f"{table.name}.{name}: a stored secret cannot be decrypted with "
                            "ENCRYPTION_KEYS (was a key removed?)") from exc
                    match = [raw.c[k] == row[i] for i, k in enumerate(keys)]
                    conn.execute(update(raw).where(*match).values({name: fresh}))
                    rotated += 1
    return rotated
