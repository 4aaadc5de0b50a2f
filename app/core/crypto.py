"""Secrets at rest (mailbox passwords, OAuth tokens, TOTP seeds, stored answers that hold a
secret): Fernet, keyed from the service's secret key.

The Fernet key is derived with HKDF-SHA256 under a fixed label, so the secret key's other uses
(signing, say) get unrelated keys, and a label of their own gives any new use another key (TOTP
seeds have theirs).
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_LABEL = b"ticketry secrets at rest: fernet v1"
TOTP_LABEL = b"ticketry totp secrets: fernet v1"
IDEMPOTENT_ANSWER_LABEL = b"ticketry idempotent answers: fernet v1"


class SecretKeyChanged(Exception):
    """A stored secret cannot be decrypted with the current secret key."""

    def __init__(self) -> None:
        super().__init__(
            "A stored secret cannot be decrypted: it was encrypted with another secret key, so "
            "TICKETRY_SECRET_KEY has changed since (or the stored value is damaged). Restore the "
            "previous key, or enter the secret again."
        )


@lru_cache(maxsize=8)
def _fernet(secret_key: str, label: bytes) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(
        secret_key.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(secret_key: str, plaintext: str, *, label: bytes = _LABEL) -> str:
    """An authenticated, timestamped, URL-safe token holding ``plaintext``."""
    return encrypt_bytes(secret_key, plaintext.encode("utf-8"), label=label).decode("ascii")


def decrypt(secret_key: str, token: str, *, label: bytes = _LABEL) -> str:
    """The plaintext of a token from :func:`encrypt` with the same key; ``SecretKeyChanged``
    when it was made with another key (a token cannot tell a changed key from damage)."""
    try:
        return decrypt_bytes(secret_key, token.encode("ascii"), label=label).decode("utf-8")
    except UnicodeError as exc:
        raise SecretKeyChanged from exc


def encrypt_bytes(secret_key: str, data: bytes, *, label: bytes = _LABEL) -> bytes:
    """:func:`encrypt` for data that need not be text (a stored HTTP answer)."""
    return _fernet(secret_key, label).encrypt(data)


def decrypt_bytes(secret_key: str, token: bytes, *, label: bytes = _LABEL) -> bytes:
    """The data of a token from :func:`encrypt_bytes`; ``SecretKeyChanged`` as :func:`decrypt`."""
    try:
        return _fernet(secret_key, label).decrypt(token)
    except InvalidToken as exc:
        raise SecretKeyChanged from exc
