"""SecretBox: what is sealed opens with the key, and only with it; a changed token or a
wrong key is a clear error, never garbage plaintext."""

from __future__ import annotations

import pytest

from groupcloud.dbaas import SecretBox, SecretBoxError


def test_a_sealed_secret_opens_to_what_was_sealed() -> None:
    box = SecretBox(SecretBox.generate_key())
    secret = "p@ss:wörd/%20 — 비밀"
    token = box.seal(secret)
    assert secret not in token
    assert box.open(token) == secret
    assert box.seal(secret) != token  # a fresh IV each time: equal secrets look different


def test_a_tampered_token_does_not_open() -> None:
    box = SecretBox(SecretBox.generate_key())
    token = box.seal("hunter2")
    middle = len(token) // 2
    flipped = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    for bad in (flipped, token[:-4], "", "not a token at all", "한글"):
        with pytest.raises(SecretBoxError, match="does not open"):
            box.open(bad)


def test_another_key_does_not_open_it() -> None:
    token = SecretBox(SecretBox.generate_key()).seal("hunter2")
    with pytest.raises(SecretBoxError, match="another key"):
        SecretBox(SecretBox.generate_key()).open(token)


# A fixed truncated key (not generate_key() here: the two test processes must collect
# the same parameters).
TRUNCATED = "gYqpsGLx-3NJTAzJ3FP77YShMtOBDRmhiyJTCOmyq6"


@pytest.mark.parametrize(
    "key", ["", "short", "x" * 44, TRUNCATED], ids=["empty", "short", "not-base64", "truncated"]
)
def test_a_bad_key_is_refused_without_quoting_it(key: str) -> None:
    with pytest.raises(SecretBoxError, match="not a Fernet key") as info:
        SecretBox(key)
    assert info.value.__cause__ is None
    if key:
        assert key not in str(info.value)


def test_old_keys_open_what_they_sealed_and_new_tokens_use_the_new_key() -> None:
    old, new = SecretBox.generate_key(), SecretBox.generate_key()
    before = SecretBox(old).seal("kept across the rotation")
    rotated = SecretBox(new, old_keys=[old])
    assert rotated.open(before) == "kept across the rotation"
    after = rotated.seal("new")
    assert SecretBox(new).open(after) == "new"
    with pytest.raises(SecretBoxError):
        SecretBox(old).open(after)


def test_the_key_stays_out_of_repr() -> None:
    key = SecretBox.generate_key()
    assert key != SecretBox.generate_key()
    assert key not in repr(SecretBox(key))
