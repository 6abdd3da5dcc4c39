"""Stored formats do not change under a refactor: hashes made by the code before the architecture change
(commit 23baf41, with the base64 helpers then copied in each module) still verify, and the same inputs
give the same bytes. A difference would lock every edge out of the broker, or every key out of the API."""

from __future__ import annotations

from central.auth.keys import hash_secret, parse_hash, verify_secret
from central.auth.passwords import mosquitto_hash, parse_mosquitto_hash, verify_mosquitto
from common.encoding import b64

# made with `mosquitto_hash("edge-secret-0123")` (iterations 101, a random salt) on commit 23baf41
MOSQUITTO_RANDOM_SALT = (
    "$7$101$oMaRKuGYMQ4TOnUE$peiYaUdL2XdttXebrO9uNYXo6S2xjeosx16Rhues+jdy/lxYcCbytAT45tAnOkzsnILu0CXhNls9"
    "fYZ+WGiBRQ=="
)
# made with `mosquitto_hash("edge-secret-0123", salt=bytes(range(12)))` on commit 23baf41
MOSQUITTO_FIXED_SALT = (
    "$7$101$AAECAwQFBgcICQoL$VEWyYYxh+d0Qe+YA/RCPB3baRI6Vtf03Ac1aYoiG2cN2honsYGePGkVmDG0S2FFSYCAJj3Km2GB0H9"
    "DGe+vYcg=="
)
# made with `hash_secret("s3cret-api-key-secret-part")` on commit 23baf41
API_KEY_HASH = "pbkdf2_sha256$100000$rsx5MPaaHR28XsxQjdSoVg==$+RVkpxfa0x7JHNm0ijdcTRzHrh4ueqZ/5/za13of6d4="


def test_mosquitto_hash_from_before_the_refactor_still_verifies() -> None:
    assert verify_mosquitto("edge-secret-0123", MOSQUITTO_RANDOM_SALT)
    assert not verify_mosquitto("edge-secret-0124", MOSQUITTO_RANDOM_SALT)


def test_mosquitto_hash_same_inputs_give_the_same_bytes_as_before() -> None:
    assert mosquitto_hash("edge-secret-0123", salt=bytes(range(12))) == MOSQUITTO_FIXED_SALT
    iterations, salt, digest = parse_mosquitto_hash(MOSQUITTO_RANDOM_SALT)
    assert f"$7${iterations}${b64(salt)}${b64(digest)}" == MOSQUITTO_RANDOM_SALT


def test_api_key_hash_from_before_the_refactor_still_verifies_and_reencodes_identically() -> None:
    assert verify_secret("s3cret-api-key-secret-part", API_KEY_HASH)
    assert not verify_secret("s3cret-api-key-secret-parT", API_KEY_HASH)
    iterations, salt, digest = parse_hash(API_KEY_HASH)
    assert f"pbkdf2_sha256${iterations}${b64(salt)}${b64(digest)}" == API_KEY_HASH
    assert verify_secret("another", hash_secret("another"))
