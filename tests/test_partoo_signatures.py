from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from bot.platform.signatures import (
    PRODUCTION_PUBLIC_KEY_PEM,
    SANDBOX_PUBLIC_KEY_PEM,
    SIGNATURE_HEADER,
    InvalidPublicKey,
    WebhookVerifier,
    load_public_key,
)

BODY = b'{"type": "message_updated", "payload": {"message": {"id": 123, "status": "Failed"}}}'

# The SubjectPublicKeyInfo bodies Partoo publishes.
PUBLISHED_PRODUCTION_SPKI = "MCowBQYDK2VwAyEA0G9ciHL6XZQXuWq6W4dFLvwNEPWgcdtQgEVlBIwZWBQ="
PUBLISHED_SANDBOX_SPKI = "MCowBQYDK2VwAyEALsyvX2yVnG3ZKRIFfEvYk2nkzanoNgAqBSqdeNub4sM="


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def sign(private_key: Ed25519PrivateKey, body: bytes) -> str:
    return base64.b64encode(private_key.sign(body)).decode()


@pytest.fixture
def private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def verifier(private_key: Ed25519PrivateKey) -> WebhookVerifier:
    return WebhookVerifier(load_public_key(public_pem(private_key.public_key())))


def test_header_name() -> None:
    assert SIGNATURE_HEADER == "X-Partoo-Signature-v1"


# Verification


def test_valid_signature_passes(private_key: Ed25519PrivateKey, verifier: WebhookVerifier) -> None:
    assert verifier.verify(BODY, sign(private_key, BODY))


def test_tampered_body_fails(private_key: Ed25519PrivateKey, verifier: WebhookVerifier) -> None:
    signature = sign(private_key, BODY)

    assert not verifier.verify(BODY.replace(b"Failed", b"Success"), signature)
    assert not verifier.verify(BODY + b" ", signature)


@pytest.mark.parametrize("signature", [None, "", "not base64!", "é", "AAAA AAAA", "AAA"])
def test_missing_or_malformed_signature_fails(verifier: WebhookVerifier, signature: str | None) -> None:
    assert not verifier.verify(BODY, signature)


def test_signature_with_embedded_whitespace_fails(private_key: Ed25519PrivateKey, verifier: WebhookVerifier) -> None:
    signature = sign(private_key, BODY)

    assert not verifier.verify(BODY, signature[:20] + "\n" + signature[20:])


def test_truncated_or_extended_signature_fails(private_key: Ed25519PrivateKey, verifier: WebhookVerifier) -> None:
    raw = private_key.sign(BODY)

    assert not verifier.verify(BODY, base64.b64encode(raw[:-1]).decode())
    assert not verifier.verify(BODY, base64.b64encode(raw + b"\x00").decode())


def test_signature_of_the_right_length_but_wrong_bytes_fails(verifier: WebhookVerifier) -> None:
    assert not verifier.verify(BODY, base64.b64encode(bytes(64)).decode())


def test_signature_from_another_key_fails(private_key: Ed25519PrivateKey) -> None:
    other = WebhookVerifier(Ed25519PrivateKey.generate().public_key())

    assert not other.verify(BODY, sign(private_key, BODY))


def test_production_key_rejects_a_body_signed_for_another_environment(
    private_key: Ed25519PrivateKey,
) -> None:
    # The test key stands in for the sandbox signer, whose private key only Partoo holds.
    sandbox_signature = sign(private_key, BODY)
    production = WebhookVerifier(load_public_key(PRODUCTION_PUBLIC_KEY_PEM))

    assert not production.verify(BODY, sandbox_signature)


# Loading keys


@pytest.mark.parametrize(
    ("pem", "published"),
    [
        (PRODUCTION_PUBLIC_KEY_PEM, PUBLISHED_PRODUCTION_SPKI),
        (SANDBOX_PUBLIC_KEY_PEM, PUBLISHED_SANDBOX_SPKI),
    ],
)
def test_published_keys_load(pem: str, published: str) -> None:
    key = load_public_key(pem)

    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert base64.b64encode(der).decode() == published


def test_published_keys_differ() -> None:
    production = load_public_key(PRODUCTION_PUBLIC_KEY_PEM).public_bytes_raw()
    sandbox = load_public_key(SANDBOX_PUBLIC_KEY_PEM).public_bytes_raw()

    assert production != sandbox


def test_loads_pem_with_literal_newlines_and_surrounding_whitespace(private_key: Ed25519PrivateKey) -> None:
    pem = public_pem(private_key.public_key())
    from_env = "  " + pem.strip().replace("\n", "\\n") + "\n\n"

    verifier = WebhookVerifier(load_public_key(from_env))

    assert verifier.verify(BODY, sign(private_key, BODY))


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("garbage", "BEGIN PUBLIC KEY"),
        (PUBLISHED_PRODUCTION_SPKI, "BEGIN PUBLIC KEY"),
        ("-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n", "could not be read"),
        ("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n", "could not be read"),
    ],
)
def test_bad_pem_raises(pem: str, reason: str) -> None:
    with pytest.raises(InvalidPublicKey, match=reason):
        load_public_key(pem)


def test_a_key_of_another_algorithm_raises() -> None:
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    with pytest.raises(InvalidPublicKey, match="not an Ed25519 key"):
        load_public_key(ec_pem)


def test_a_private_key_raises_without_echoing_it(private_key: Ed25519PrivateKey) -> None:
    private_pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()

    with pytest.raises(InvalidPublicKey, match="private key") as caught:
        load_public_key(private_pem)

    body = private_pem.splitlines()[1]
    assert body not in str(caught.value)


def test_invalid_public_key_is_a_value_error() -> None:
    assert issubclass(InvalidPublicKey, ValueError)
