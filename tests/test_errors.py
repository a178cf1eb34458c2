"""The error tree (glm_live.errors) and the mapping from GLM error bodies to it
(glm_live.wire.chat): pure."""

from __future__ import annotations

import pytest

import glm_live
from glm_live.errors import (
    AuthenticationError,
    ContentFilteredError,
    GLMError,
    GlmLiveError,
    InsufficientBalanceError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
)
from glm_live.wire.chat import error_from_response, parse_error_body


@pytest.mark.parametrize(
    ("status", "body", "cls", "retryable"),
    [
        (
            401,
            {"error": {"code": "1002", "message": "Authorization Token is invalid"}},
            AuthenticationError,
            False,
        ),
        (401, {"error": {"code": "1001", "message": "no header"}}, AuthenticationError, False),
        (
            429,
            {"error": {"code": "1302", "message": "Rate limit reached for requests"}},
            RateLimitError,
            True,
        ),
        (429, {"error": {"code": "1303", "message": "high frequency"}}, RateLimitError, True),
        (429, {"error": {"code": "1305", "message": "overloaded"}}, RateLimitError, True),
        (429, {"error": {"code": "1304", "message": "daily limit"}}, RateLimitError, False),
        (429, {"error": {"code": "1308", "message": "usage limit"}}, RateLimitError, False),
        (
            429,
            {"error": {"code": "1113", "message": "Your account is in arrears"}},
            InsufficientBalanceError,
            False,
        ),
        (
            400,
            {"error": {"code": "1214", "message": "Input cannot be empty"}},
            InvalidRequestError,
            False,
        ),
        (
            400,
            {"error": {"code": 1211, "message": "model does not exist"}},
            InvalidRequestError,
            False,
        ),
        (
            400,
            {"error": {"code": "1301", "message": "unsafe content"}},
            ContentFilteredError,
            False,
        ),
        (500, {"error": {"code": "500", "message": "Internal error"}}, ServerError, True),
        (503, "upstream unavailable", ServerError, True),
        (429, {"error": {"message": "slow down", "type": "rate_limit"}}, RateLimitError, True),
        (404, {"error": {"message": "no such route"}}, InvalidRequestError, False),
        (418, "teapot", GLMError, False),
        (None, {"error": {"code": "1302", "message": "in-stream limit"}}, RateLimitError, True),
    ],
)
def test_mapping(status: int | None, body: object, cls: type, retryable: bool) -> None:
    error = error_from_response(status, body)  # type: ignore[arg-type]
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.status == status


def test_code_is_a_string_and_message_kept() -> None:
    error = error_from_response(429, b'{"error":{"code":1302,"message":"Rate limit reached"}}')
    assert error.code == "1302"
    assert error.message == "Rate limit reached"
    assert str(error).startswith("[HTTP 429 code 1302] Rate limit reached (")


def test_retry_after_travels() -> None:
    error = error_from_response(429, {"error": {"code": "1302", "message": "x"}}, retry_after=2.5)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 2.5


def test_non_json_body_is_shown() -> None:
    error = error_from_response(502, "<html>Bad gateway</html>")
    assert "Bad gateway" in str(error)
    assert error.code is None


def test_secret_scrubbed_from_message() -> None:
    key = "abcd1234.secretsecretsecret"
    error = error_from_response(
        401, {"error": {"code": "1002", "message": f"bad key {key}"}}, secrets=[key]
    )
    assert key not in str(error)
    assert key not in repr(error)
    assert "***" in str(error)


def test_parse_error_body_shapes() -> None:
    assert parse_error_body('{"error": "plain"}') == (None, "plain")
    assert parse_error_body("not json") == (None, None)
    assert parse_error_body("[1, 2]") == (None, None)


def test_every_error_is_a_glm_live_error() -> None:
    for name in glm_live.__all__:
        obj = getattr(glm_live, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, GlmLiveError), name


def test_exports_resolve_without_duplicates() -> None:
    assert len(set(glm_live.__all__)) == len(glm_live.__all__)
    for name in glm_live.__all__:
        assert hasattr(glm_live, name), name
