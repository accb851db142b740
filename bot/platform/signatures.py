"""Checking that a webhook delivery comes from Partoo: an Ed25519 signature of the raw body."""

from __future__ import annotations

import base64

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

PRODUCTION_PUBLIC_KEY_PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEA0G9ciHL6XZQXuWq6W4dFLvwNEPWgcdtQgEVlBIwZWBQ=\n"
    "-----END PUBLIC KEY-----\n"
)
SANDBOX_PUBLIC_KEY_PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEALsyvX2yVnG3ZKRIFfEvYk2nkzanoNgAqBSqdeNub4sM=\n"
    "-----END PUBLIC KEY-----\n"
)
SIGNATURE_HEADER = "X-Partoo-Signature-v1"


class InvalidPublicKey(ValueError):
    """The configured text is not an Ed25519 public key in PEM form."""


def load_public_key(pem: str) -> Ed25519PublicKey:
    """Read an Ed25519 public key from PEM text, as found in a file or an environment variable."""
    # Environment variables often carry a multi-line PEM with its newlines written as `\n`.
    text = pem.replace("\\n", "\n").strip()
    if not text:
        raise InvalidPublicKey("the public key is empty")
    if "PRIVATE KEY" in text:
        raise InvalidPublicKey("this is a private key; give the public key instead")
    if not text.startswith("-----BEGIN PUBLIC KEY-----"):
        raise InvalidPublicKey("expected PEM text starting with -----BEGIN PUBLIC KEY-----")
    try:
        key = load_pem_public_key(text.encode())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidPublicKey("the public key PEM could not be read") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidPublicKey("the public key is not an Ed25519 key (Partoo signs with Ed25519)")
    return key


class WebhookVerifier:
    """Tells whether a webhook body was signed by the holder of one Ed25519 key."""

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self._public_key = public_key

    def verify(self, body: bytes, signature: str | None) -> bool:
        """Whether `signature` (the base64 header value) is a valid signature of `body`; never raises."""
        if not signature:
            return False
        try:
            raw = base64.b64decode(signature, validate=True)
        except ValueError:  # binascii.Error, or a str that is not ASCII
            return False
        try:
            self._public_key.verify(raw, body)
        except InvalidSignature:  # also raised for a signature of the wrong length
            return False
        return True
