"""One secret, a key per purpose; signatures that bind a record to its place; rotation."""

from __future__ import annotations

import pytest

from stream.errors import ConfigError, StateRejected
from stream.keys import Keys, Signer, derive, keys, with_secret
from stream.settings import Settings

SECRET = "a" * 64
OLD = "b" * 64


def test_each_purpose_has_its_own_key_and_the_same_secret_gives_the_same_keys():
    k = Keys.from_secret(SECRET)
    assert len(k.personal) == 32 and k.personal != derive(SECRET.encode(), "state-signing v1")
    assert k.personal == Keys.from_secret(SECRET).personal, "hashes stay comparable across restarts"
    assert k.personal != Keys.from_secret(OLD).personal
    assert SECRET.encode() not in k.personal


def test_a_signature_binds_the_body_to_its_context():
    signer = Keys.from_secret(SECRET).state
    blob = signer.sign("state[0]", b'{"x": 1}')
    assert signer.verify("state[0]", blob) == b'{"x": 1}'
    for context, tampered in [
        ("state[1]", blob),  # a genuine record copied to another partition
        ("state[0]", blob[:-2] + b"2}"),  # a tampered body
        ("state[0]", blob[:32]),  # a signature without its body
        ("state[0]", b"short"),
        ("state[0]", b""),
        ("state[0]", Keys.from_secret(OLD).state.sign("state[0]", b'{"x": 1}')),  # another secret
    ]:
        with pytest.raises(StateRejected) as refused:
            signer.verify(context, tampered)
        assert refused.value.reason == "signature"


def test_rotation_accepts_what_a_previous_secret_signed_and_signs_with_the_new_one():
    old = Keys.from_secret(OLD).state
    rotated = Keys.from_secret(SECRET, (OLD,)).state
    assert rotated.verify("t[0]", old.sign("t[0]", b"body")) == b"body"
    new_blob = rotated.sign("t[0]", b"body")
    assert Keys.from_secret(SECRET).state.verify("t[0]", new_blob) == b"body"
    with pytest.raises(StateRejected):
        old.verify("t[0]", new_blob)


def test_keys_from_settings():
    assert keys(Settings(secret=SECRET)).personal == Keys.from_secret(SECRET).personal
    both = keys(Settings(secret=SECRET, previous_secrets=f" {OLD}, {'c' * 40} "))
    assert both.state.verify("x", Keys.from_secret("c" * 40).state.sign("x", b"1")) == b"1"
    assert isinstance(both.state, Signer)
    with pytest.raises(ConfigError, match=r"STREAMSCORE_SECRET is not set: .*secrets\.token_hex"):
        keys(Settings(_env_file=None, secret=None))
    with pytest.raises(ConfigError, match="shorter than 32"):
        keys(Settings(secret="streamscore-development-key"))
    with pytest.raises(ConfigError, match="STREAMSCORE_PII_KEY is no longer read"):
        keys(Settings(secret=SECRET, pii_key="anything"))


def test_with_secret_adds_a_random_one_only_when_missing():
    made = with_secret({"A": "1"})
    assert len(made["STREAMSCORE_SECRET"]) == 64 and made["A"] == "1"
    assert made["STREAMSCORE_SECRET"] != with_secret({})["STREAMSCORE_SECRET"]
    assert with_secret({"STREAMSCORE_SECRET": SECRET})["STREAMSCORE_SECRET"] == SECRET
