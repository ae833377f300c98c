from __future__ import annotations

import re

import pytest

from campaigns.tracking.tokens import sign_job_token, verify_job_token

SECRET = b"0123456789abcdef0123456789abcdef"
JOB_IDS = [0, 1, 42, 31, 32, 1_000_000, 2**31 - 1, 2**63 - 1]


@pytest.mark.parametrize("job_id", JOB_IDS)
@pytest.mark.parametrize("purpose", ["bounce", "unsubscribe"])
def test_a_token_names_its_job(purpose: str, job_id: int) -> None:
    token = sign_job_token(SECRET, purpose, job_id)

    assert verify_job_token(SECRET, purpose, token) == job_id


@pytest.mark.parametrize("job_id", JOB_IDS)
def test_tokens_are_short_lower_case_and_safe_in_urls_and_local_parts(job_id: int) -> None:
    token = sign_job_token(SECRET, "bounce", job_id)

    assert re.fullmatch(r"[a-z2-7]{17,29}", token)
    assert len(token) <= 32


def test_the_signature_is_80_bits_after_the_job_id() -> None:
    # Job 1 is one base-32 digit; the remaining 16 characters of 5 bits each are the MAC.
    assert len(sign_job_token(SECRET, "bounce", 1)) == 1 + 16
    assert len(sign_job_token(SECRET, "bounce", 2**63 - 1)) == 13 + 16


def test_signing_is_deterministic() -> None:
    assert sign_job_token(SECRET, "bounce", 7) == sign_job_token(SECRET, "bounce", 7)


def test_a_bounce_token_survives_an_mta_changing_its_case() -> None:
    token = sign_job_token(SECRET, "bounce", 123456)

    assert token.lower() == token
    assert verify_job_token(SECRET, "bounce", token.lower()) == 123456
    assert verify_job_token(SECRET, "bounce", token.upper()) == 123456


def test_a_token_for_one_purpose_is_refused_for_another() -> None:
    bounce = sign_job_token(SECRET, "bounce", 99)
    unsubscribe = sign_job_token(SECRET, "unsubscribe", 99)

    assert bounce != unsubscribe
    assert verify_job_token(SECRET, "unsubscribe", bounce) is None
    assert verify_job_token(SECRET, "bounce", unsubscribe) is None


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = sign_job_token(b"another secret", "unsubscribe", 5)

    assert verify_job_token(SECRET, "unsubscribe", token) is None


def test_changing_any_character_of_a_token_makes_it_invalid() -> None:
    token = sign_job_token(SECRET, "unsubscribe", 123456789)

    for position in range(len(token)):
        for replacement in "a7q":
            if replacement == token[position]:
                continue
            forged = token[:position] + replacement + token[position + 1 :]
            assert verify_job_token(SECRET, "unsubscribe", forged) is None, forged


def test_another_jobs_signature_does_not_carry_over() -> None:
    token_for_1 = sign_job_token(SECRET, "unsubscribe", 1)
    token_for_2 = sign_job_token(SECRET, "unsubscribe", 2)

    spliced = token_for_2[:1] + token_for_1[1:]

    assert spliced != token_for_2
    assert verify_job_token(SECRET, "unsubscribe", spliced) is None


def test_another_spelling_of_the_same_job_id_is_refused() -> None:
    token = sign_job_token(SECRET, "unsubscribe", 5)

    # "a" is the zero digit: "af..." spells 5 too, but only the shortest spelling is issued.
    assert verify_job_token(SECRET, "unsubscribe", "a" + token) is None


def test_truncated_and_extended_tokens_are_refused() -> None:
    token = sign_job_token(SECRET, "bounce", 77777)

    assert verify_job_token(SECRET, "bounce", token[:-1]) is None
    assert verify_job_token(SECRET, "bounce", token[1:]) is None
    assert verify_job_token(SECRET, "bounce", token + "a") is None


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "a",
        "a" * 16,
        "a" * 17,
        "z" * 29,
        "z" * 30,
        "x" * 10_000,
        "!!!!!!!!!!!!!!!!!!!!",
        "abc def ghi jkl mno pq",
        "01890189018901890189",
        "ßßßßßßßßßßßßßßßßßß",
        "\u0130" * 20,
        "aaaaaaaaaaaaaaaaaaa\x00",
        None,
        123,
        b"abcdefghijklmnopqrst",
    ],
)
def test_garbage_is_refused_without_an_exception(garbage: object) -> None:
    assert verify_job_token(SECRET, "bounce", garbage) is None  # type: ignore[arg-type]


def test_a_job_id_that_a_token_cannot_hold_is_refused_when_signing() -> None:
    with pytest.raises(ValueError, match="job id out of range: -1"):
        sign_job_token(SECRET, "bounce", -1)
    with pytest.raises(ValueError, match="job id out of range"):
        sign_job_token(SECRET, "bounce", 2**63)
