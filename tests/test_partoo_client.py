from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from bot import __version__
from bot.defaults import DEFAULT_TIMEOUT
from bot.domain.outcomes import OutcomeKind, PartooAnswer
from bot.platform.partoo import DEFAULT_RETRY_AFTER, MAX_DETAIL_LENGTH, PartooClient, parse_retry_after

API_KEY = "sk-test-4f1c9a7e2b8d"
BASE_URL = "https://partoo.test/v2"

Handler = Callable[[httpx.Request], httpx.Response] | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


async def call(
    handler: Handler,
    message_id: int = 42,
    *,
    follow_redirects: bool = False,
    http_timeout: httpx.Timeout | None = None,
) -> PartooAnswer:
    """Make one retry call through a mock transport that answers with `handler`."""
    transport = httpx.MockTransport(handler)
    async with (
        httpx.AsyncClient(transport=transport, follow_redirects=follow_redirects, timeout=http_timeout) as http,
        PartooClient(base_url=BASE_URL, api_key=API_KEY, http=http) as partoo,
    ):
        return await partoo.retry_message(message_id)


def answer_with(status: int, body: object = None, headers: dict[str, str] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, headers=headers)
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handler


def raising(error: type[httpx.TransportError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error(f"failed with key {API_KEY}", request=request)

    return handler


class BrokenBody(httpx.AsyncByteStream):
    """A body whose connection times out after the status line arrived."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        raise httpx.ReadTimeout("timed out reading the body")
        yield b""  # pragma: no cover


# The request


async def test_posts_to_the_retry_path_with_the_key_and_no_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "success"})

    await call(handler, message_id=123)

    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == "https://partoo.test/v2/messages/123/retry"
    assert request.headers["x-APIKey"] == API_KEY
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == f"partoo-retry/{__version__}"
    assert request.content == b""


async def test_trailing_slash_in_base_url_is_ignored() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200)

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        PartooClient(base_url=BASE_URL + "/", api_key=API_KEY, http=http) as partoo,
    ):
        await partoo.retry_message(7)

    assert seen == ["/v2/messages/7/retry"]


async def test_uses_its_own_timeout_even_on_a_shared_client() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    await call(handler, http_timeout=httpx.Timeout(60.0))

    assert seen[0].extensions["timeout"] == DEFAULT_TIMEOUT.as_dict()


def test_default_timeout_is_explicit() -> None:
    assert DEFAULT_TIMEOUT.as_dict() == {"connect": 5.0, "read": 15.0, "write": 5.0, "pool": 5.0}


async def test_makes_exactly_one_attempt_on_a_transient_answer() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    answer = await call(handler)

    assert answer.kind is OutcomeKind.UNAVAILABLE
    assert len(calls) == 1


async def test_never_follows_a_redirect() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(307, headers={"Location": "https://elsewhere.test/retry"})

    answer = await call(handler, follow_redirects=True)

    assert len(calls) == 1
    assert answer.kind is OutcomeKind.UNKNOWN
    assert answer.is_final


def test_rejects_an_empty_key() -> None:
    with pytest.raises(ValueError, match="empty"):
        PartooClient(base_url=BASE_URL, api_key="")


# Status -> kind


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, OutcomeKind.ACCEPTED),
        (202, OutcomeKind.ACCEPTED),
        (204, OutcomeKind.ACCEPTED),
        (400, OutcomeKind.REFUSED),
        (401, OutcomeKind.BAD_KEY),
        (403, OutcomeKind.FORBIDDEN),
        (404, OutcomeKind.NOT_FOUND),
        (409, OutcomeKind.REFUSED),
        (422, OutcomeKind.REFUSED),
        (429, OutcomeKind.RATE_LIMITED),
        (500, OutcomeKind.UNAVAILABLE),
        (502, OutcomeKind.UNAVAILABLE),
        (503, OutcomeKind.UNAVAILABLE),
        (504, OutcomeKind.UNAVAILABLE),
        (102, OutcomeKind.UNKNOWN),
        (301, OutcomeKind.UNKNOWN),
        (304, OutcomeKind.UNKNOWN),
    ],
)
async def test_status_maps_to_kind(status: int, kind: OutcomeKind) -> None:
    answer = await call(answer_with(status))

    assert answer.kind is kind
    assert answer.http_status == status


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_transient_statuses_are_not_final(status: int) -> None:
    assert not (await call(answer_with(status))).is_final


@pytest.mark.parametrize("status", [200, 301, 400, 401, 403, 404, 422])
async def test_other_statuses_are_final(status: int) -> None:
    assert (await call(answer_with(status))).is_final


# Detail


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (200, {"status": "success"}, ""),
        (
            400,
            {"errors": {"json": {"message_id": ["Message is not failed", "Message is too old"]}}},
            "message_id: Message is not failed; Message is too old",
        ),
        (
            400,
            {"errors": {"json": {"a": ["first"], "b": ["second"]}}},
            "a: first; b: second",
        ),
        (400, {"errors": {"json": "Message already being sent"}}, "Message already being sent"),
        (400, {"error": {"json": "Message already being sent"}}, "Message already being sent"),
        (400, {"errors": {"json": ["one", "two"]}}, "one; two"),
        (400, {"errors": "plain text"}, "plain text"),
        (401, {"errors": {"authentication": "User not authenticated"}}, "User not authenticated"),
        (403, {"error": {"authorization": "Operation not allowed"}}, "Operation not allowed"),
        (404, {"error": {"json": "Resource not found"}}, "Resource not found"),
        (400, {"errors": {"json": "two\n  lines"}}, "two lines"),
        (418, {"status": "teapot"}, "HTTP 418 with no error detail"),
        (400, ["not", "an", "object"], "HTTP 400 with no error detail"),
        (500, b"", "HTTP 500 with an empty body"),
        (400, b'{"errors": {"json": ', "HTTP 400 with a non-JSON body"),
        (
            502,
            b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>",
            "HTTP 502 with a non-JSON body",
        ),
        (302, {"errors": "ignored"}, "unexpected HTTP 302 answer"),
    ],
)
async def test_detail_is_a_plain_sentence(status: int, body: object, detail: str) -> None:
    answer = await call(answer_with(status, body))

    assert answer.detail == detail


async def test_deeply_nested_json_gives_a_short_detail() -> None:
    body = b'{"errors": ' + b"[" * 5000 + b"]" * 5000 + b"}"

    answer = await call(answer_with(400, body))

    assert answer.kind is OutcomeKind.REFUSED
    assert len(answer.detail) <= MAX_DETAIL_LENGTH


async def test_detail_is_capped() -> None:
    answer = await call(answer_with(400, {"errors": {"json": "x" * 5000}}))

    assert len(answer.detail) == MAX_DETAIL_LENGTH
    assert answer.detail.endswith("…")


async def test_an_echoed_key_is_redacted_from_the_detail() -> None:
    body = {"errors": {"authentication": f"Unknown key {API_KEY}"}}

    answer = await call(answer_with(401, body))

    assert API_KEY not in answer.detail
    assert answer.detail == "Unknown key [redacted]"


async def test_the_status_decides_even_when_the_body_cannot_be_read() -> None:
    accepted = await call(lambda request: httpx.Response(200, stream=BrokenBody()))
    refused = await call(lambda request: httpx.Response(400, stream=BrokenBody()))

    assert accepted.kind is OutcomeKind.ACCEPTED
    assert refused.kind is OutcomeKind.REFUSED
    assert refused.detail == "HTTP 400; its body could not be read"


# Retry-After


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("2.5", 2.5),
        (" 30 ", 30.0),
        ("0", 1.0),
        ("-5", 1.0),
        ("86400", 600.0),
        ("soon", DEFAULT_RETRY_AFTER),
        ("nan", DEFAULT_RETRY_AFTER),
        ("inf", DEFAULT_RETRY_AFTER),
        ("", DEFAULT_RETRY_AFTER),
        (None, DEFAULT_RETRY_AFTER),
    ],
)
async def test_rate_limited_retry_after(header: str | None, seconds: float) -> None:
    headers = None if header is None else {"Retry-After": header}

    answer = await call(answer_with(429, headers=headers))

    assert answer.kind is OutcomeKind.RATE_LIMITED
    assert answer.retry_after == seconds


async def test_rate_limited_retry_after_as_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)

    answer = await call(answer_with(429, headers={"Retry-After": when}))

    assert answer.retry_after is not None
    assert 85 <= answer.retry_after <= 91


async def test_rate_limited_retry_after_in_the_past_waits_the_minimum() -> None:
    answer = await call(answer_with(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))

    assert answer.retry_after == 1.0


def test_parse_retry_after_http_date_is_relative_to_now() -> None:
    now = datetime(2015, 10, 21, 7, 26, 0, tzinfo=UTC)

    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 -0000", now=now) == 120.0


async def test_unavailable_keeps_retry_after_only_when_given() -> None:
    with_header = await call(answer_with(503, headers={"Retry-After": "30"}))
    without = await call(answer_with(503))

    assert with_header.retry_after == 30.0
    assert without.retry_after is None


@pytest.mark.parametrize("status", [200, 400, 404])
async def test_final_answers_have_no_retry_after(status: int) -> None:
    answer = await call(answer_with(status, headers={"Retry-After": "30"}))

    assert answer.retry_after is None


# Transport errors


@pytest.mark.parametrize(
    ("error", "kind", "detail"),
    [
        (httpx.ConnectError, OutcomeKind.UNAVAILABLE, "could not connect to Partoo"),
        (httpx.ConnectTimeout, OutcomeKind.UNAVAILABLE, "could not connect to Partoo within 5 s"),
        (httpx.PoolTimeout, OutcomeKind.UNAVAILABLE, "no free connection to Partoo within 5 s"),
        (httpx.WriteTimeout, OutcomeKind.UNAVAILABLE, "could not send the request to Partoo within 5 s"),
        (httpx.WriteError, OutcomeKind.UNAVAILABLE, "could not send the request to Partoo"),
        (httpx.ProxyError, OutcomeKind.UNAVAILABLE, "could not reach Partoo through the proxy"),
        (httpx.LocalProtocolError, OutcomeKind.UNAVAILABLE, "could not send the request to Partoo"),
        (httpx.UnsupportedProtocol, OutcomeKind.UNAVAILABLE, "the Partoo URL has an unsupported scheme"),
        (httpx.ReadTimeout, OutcomeKind.UNKNOWN, "no answer from Partoo within 15 s"),
        (httpx.ReadError, OutcomeKind.UNKNOWN, "the connection to Partoo broke before its answer"),
        (httpx.RemoteProtocolError, OutcomeKind.UNKNOWN, "the connection to Partoo broke before its answer"),
        (httpx.CloseError, OutcomeKind.UNKNOWN, "the connection to Partoo broke before its answer"),
    ],
)
async def test_transport_error_maps_to_kind(error: type[httpx.TransportError], kind: OutcomeKind, detail: str) -> None:
    answer = await call(raising(error))

    assert answer.kind is kind
    assert answer.http_status is None
    assert answer.detail == detail
    assert answer.retry_after is None


async def test_maybe_received_request_is_final_and_not_received_is_not() -> None:
    assert (await call(raising(httpx.ReadTimeout))).is_final
    assert not (await call(raising(httpx.ConnectError))).is_final


async def test_read_timeout_detail_names_the_configured_timeout() -> None:
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(raising(httpx.ReadTimeout))) as http,
        PartooClient(base_url=BASE_URL, api_key=API_KEY, http=http, timeout=httpx.Timeout(2.5)) as partoo,
    ):
        answer = await partoo.retry_message(1)

    assert answer.detail == "no answer from Partoo within 2.5 s"


# Latency and logging


async def test_latency_is_measured() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return httpx.Response(200)

    answer = await call(slow)

    assert 50 <= answer.latency_ms < 5000


async def test_logs_one_line_per_call(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.partoo")

    await call(answer_with(404, {"error": {"json": "Resource not found"}}), message_id=987)

    [record] = [r for r in caplog.records if r.name == "bot.partoo"]
    message = record.getMessage()
    assert "message_id=987" in message
    assert "status=404" in message
    assert "kind=not_found" in message
    assert "latency_ms=" in message


@pytest.mark.parametrize(
    "handler",
    [
        answer_with(401, {"errors": {"authentication": f"Unknown key {API_KEY}"}}),
        answer_with(502, f"<html>{API_KEY}</html>".encode()),
        answer_with(200, {"status": "success"}),
        raising(httpx.ConnectError),
        raising(httpx.ReadTimeout),
    ],
)
async def test_the_key_never_appears_in_the_answer_or_the_logs(
    handler: Handler, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    answer = await call(handler)

    assert API_KEY not in repr(answer)
    assert caplog.records
    for record in caplog.records:
        assert API_KEY not in record.getMessage()
        assert API_KEY not in json.dumps(record.__dict__, default=str)


# Ownership of the HTTP client


async def test_aclose_leaves_a_shared_http_client_open() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer_with(200))) as http:
        partoo = PartooClient(base_url=BASE_URL, api_key=API_KEY, http=http)
        await partoo.aclose()

        assert not http.is_closed
        assert (await partoo.retry_message(1)).kind is OutcomeKind.ACCEPTED


async def test_aclose_closes_its_own_http_client() -> None:
    async with PartooClient(base_url=BASE_URL, api_key=API_KEY) as partoo:
        own_http = partoo._http
        assert not own_http.is_closed

    assert own_http.is_closed
