from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.fernet import Fernet, InvalidToken

from app.core import crypto

KEY = "en-lang-tilfældig-hemmelig-nøgle-til-test-0123456789"


def test_round_trip() -> None:
    for plaintext in ("", "kodeord", "Pässwörd med æøå og 🙂", "x" * 10_000):
        token = crypto.encrypt(KEY, plaintext)
        assert plaintext not in token or plaintext == ""
        assert crypto.decrypt(KEY, token) == plaintext


def test_each_encryption_differs() -> None:
    # A fresh IV each time: equal secrets cannot be spotted by equal ciphertexts.
    assert crypto.encrypt(KEY, "samme") != crypto.encrypt(KEY, "samme")


def test_another_key_says_the_secret_key_changed() -> None:
    token = crypto.encrypt(KEY, "kodeord")
    with pytest.raises(crypto.SecretKeyChanged, match="TICKETRY_SECRET_KEY has changed"):
        crypto.decrypt(KEY + "-ny", token)
    with pytest.raises(crypto.SecretKeyChanged):
        crypto.decrypt(KEY, "not a token")


def test_the_fernet_key_is_derived_not_the_secret_key_itself() -> None:
    """Other uses of the secret key (or of its plain hash) cannot read these secrets."""
    token = crypto.encrypt(KEY, "kodeord").encode()
    for naive in (
        hashlib.sha256(KEY.encode()).digest(),
        KEY.encode()[:32],
    ):
        with pytest.raises(InvalidToken):
            Fernet(base64.urlsafe_b64encode(naive)).decrypt(token)
