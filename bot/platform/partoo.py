"""The one Partoo call the bot makes: ask Partoo to send a failed message again."""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import math
import ssl
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import httpx

from bot import __version__
from bot.defaults import CHECK_TIMEOUT, DEFAULT_TIMEOUT
from bot.domain.outcomes import OutcomeKind, PartooAnswer
from bot.platform.conversations import CheckOutcome, ConversationAnswer, answer_for

DEFAULT_RETRY_AFTER = 60.0
MIN_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 600.0
MAX_DETAIL_LENGTH = 300

USER_AGENT = f"partoo-retry/{__version__}"

logger = logging.getLogger("bot.partoo")

_KIND_BY_STATUS: dict[int, OutcomeKind] = {
    400: OutcomeKind.REFUSED,
    401: OutcomeKind.BAD_KEY,
    403: OutcomeKind.FORBIDDEN,
    404: OutcomeKind.NOT_FOUND,
    429: OutcomeKind.RATE_LIMITED,
}

# Keyed by the status class (status // 100). 1xx and 3xx are not answers Partoo gives to this call:
# whatever happened behind them is unknown, so they are final rather than a reason to send again.
_KIND_BY_STATUS_CLASS: dict[int, OutcomeKind] = {
    1: OutcomeKind.UNKNOWN,
    2: OutcomeKind.ACCEPTED,
    3: OutcomeKind.UNKNOWN,
    4: OutcomeKind.REFUSED,
    5: OutcomeKind.UNAVAILABLE,
}

# Partoo has no idempotency key, so the question for a transport error is: may Partoo have received
# the request? If certainly not, the call is UNAVAILABLE and safe to make again. Connect and pool
# errors fail before a byte is sent; proxy, scheme and local protocol errors fail before the request
# leaves; a write error or timeout means the request was not fully written (it has no body, so Partoo
# cannot act on a part of it). Once the request is written, a read timeout or a dropped connection
# says nothing about whether Partoo acted on it, and sending again could message the customer twice:
# UNKNOWN, final. Errors not listed here fall into that second group.
_TRANSPORT_ERRORS: tuple[tuple[type[httpx.TransportError], OutcomeKind, str], ...] = (
    (httpx.ConnectTimeout, OutcomeKind.UNAVAILABLE, "could not connect to Partoo within {connect}"),
    (httpx.ConnectError, OutcomeKind.UNAVAILABLE, "could not connect to Partoo"),
    (httpx.PoolTimeout, OutcomeKind.UNAVAILABLE, "no free connection to Partoo within {pool}"),
    (httpx.WriteTimeout, OutcomeKind.UNAVAILABLE, "could not send the request to Partoo within {write}"),
    (httpx.WriteError, OutcomeKind.UNAVAILABLE, "could not send the request to Partoo"),
    (httpx.ProxyError, OutcomeKind.UNAVAILABLE, "could not reach Partoo through the proxy"),
    (httpx.UnsupportedProtocol, OutcomeKind.UNAVAILABLE, "the Partoo URL has an unsupported scheme"),
    (httpx.LocalProtocolError, OutcomeKind.UNAVAILABLE, "could not send the request to Partoo"),
    (httpx.ReadTimeout, OutcomeKind.UNKNOWN, "no answer from Partoo within {read}"),
)
_MAYBE_RECEIVED_DETAIL = "the connection to Partoo broke before its answer"

# Keys of Partoo's error object whose value is the message itself, not the name of a field.
_MESSAGE_KEYS = frozenset({"json", "authentication", "authorization"})
_MAX_DEPTH = 4


# `GET /webhooks` is paginated; an organisation has a handful of configurations, so a few pages are plenty.
MAX_WEBHOOK_PAGES = 20


@dataclass(frozen=True)
class WebhookConfig:
    """One webhook configured in Partoo: which event it sends, and where."""

    id: int | None
    event_type: str
    url: str


class PartooReadError(Exception):
    """A read-only call that did not succeed: `status` is Partoo's HTTP status, None when there was no answer."""

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def kind_for_status(status: int) -> OutcomeKind:
    """The outcome an HTTP status from the retry endpoint stands for."""
    return _KIND_BY_STATUS.get(status) or _KIND_BY_STATUS_CLASS.get(status // 100, OutcomeKind.UNKNOWN)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (seconds or HTTP-date), clamped; None if unusable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, MIN_RETRY_AFTER), MAX_RETRY_AFTER)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's own TLS context, made once per process: loading the CA bundle takes tens of milliseconds."""
    return httpx.create_ssl_context()


class PartooClient:
    """Calls Partoo's retry endpoint once per request and classifies the answer."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        http: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        check_timeout: httpx.Timeout = CHECK_TIMEOUT,
    ) -> None:
        if not api_key:
            raise ValueError("the Partoo API key is empty")
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._check_timeout = check_timeout
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(verify=_tls_context())
        self._headers = {"x-APIKey": api_key, "Accept": "application/json", "User-Agent": USER_AGENT}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def retry_message(self, message_id: int) -> PartooAnswer:
        """Ask Partoo to send message `message_id` again: one attempt, never raises for HTTP trouble."""
        request = self._http.build_request(
            "POST",
            f"{self._base_url}/messages/{message_id:d}/retry",
            headers=self._headers,
            timeout=self._timeout,
        )
        started = time.perf_counter()
        answer = await self._send(request)
        answer = replace(answer, latency_ms=(time.perf_counter() - started) * 1000)
        logger.info(
            "Partoo retry message_id=%d status=%s kind=%s latency_ms=%.0f",
            message_id,
            answer.http_status if answer.http_status is not None else "-",
            answer.kind,
            answer.latency_ms,
        )
        return answer

    async def get_conversation(self, conversation_id: int) -> ConversationAnswer:
        """Read a conversation's state (`GET /conversations/{id}`): a read, never raises for HTTP trouble."""
        started = time.perf_counter()
        try:
            response = await self._http.get(
                f"{self._base_url}/conversations/{conversation_id:d}",
                headers=self._headers,
                timeout=self._check_timeout,
                follow_redirects=False,
            )
            answer = answer_for(response.status_code, response.content, conversation_id)
            if answer.outcome is CheckOutcome.RATE_LIMITED:
                wait = _retry_after(OutcomeKind.RATE_LIMITED, response.headers.get("Retry-After"))
                answer = replace(answer, retry_after=wait)
        except httpx.TimeoutException:
            answer = ConversationAnswer(CheckOutcome.UNAVAILABLE, reason="Partoo did not answer in time")
        except (httpx.TransportError, httpx.DecodingError):
            answer = ConversationAnswer(CheckOutcome.UNAVAILABLE, reason="Partoo could not be reached")
        answer = replace(answer, latency_ms=(time.perf_counter() - started) * 1000)
        logger.info(
            "Partoo conversation conversation_id=%d status=%s outcome=%s latency_ms=%.0f",
            conversation_id,
            answer.http_status if answer.http_status is not None else "-",
            answer.outcome,
            answer.latency_ms,
        )
        return answer

    async def list_webhooks(self) -> list[WebhookConfig]:
        """Partoo's webhook configurations for the key's organisation (`GET /webhooks`, every page); read-only."""
        found: list[WebhookConfig] = []
        page, last_page = 1, 1
        while page <= min(last_page, MAX_WEBHOOK_PAGES):
            try:
                response = await self._http.get(
                    f"{self._base_url}/webhooks",
                    params={"page": page},
                    headers=self._headers,
                    timeout=self._timeout,
                    follow_redirects=False,
                )
            except httpx.TransportError as exc:
                raise PartooReadError(None, self._clean(f"no answer from Partoo: {type(exc).__name__}")) from None
            if not response.is_success:
                detail = _detail(kind_for_status(response.status_code), response.status_code, response.content)
                raise PartooReadError(response.status_code, self._clean(detail))
            try:
                document = response.json()
            except ValueError:
                raise PartooReadError(response.status_code, "Partoo answered with a non-JSON body") from None
            if not isinstance(document, dict):
                raise PartooReadError(response.status_code, "Partoo answered with an unexpected shape")
            found += [_webhook_config(item) for item in document.get("items") or [] if isinstance(item, dict)]
            max_page = document.get("max_page")
            last_page = max_page if isinstance(max_page, int) else page
            page += 1
        return found

    async def _send(self, request: httpx.Request) -> PartooAnswer:
        try:
            # A redirect would send the POST again, to wherever it points.
            response = await self._http.send(request, stream=True, follow_redirects=False)
        except httpx.TransportError as exc:
            return self._transport_failure(exc)
        # The status alone settles the outcome; the body only explains it, so losing it changes nothing.
        body: bytes | None
        try:
            body = await response.aread()
        except (httpx.TransportError, httpx.DecodingError):
            body = None
        finally:
            await response.aclose()

        status = response.status_code
        kind = kind_for_status(status)
        return PartooAnswer(
            kind=kind,
            http_status=status,
            detail=self._clean(_detail(kind, status, body)),
            retry_after=_retry_after(kind, response.headers.get("Retry-After")),
        )

    def _transport_failure(self, exc: httpx.TransportError) -> PartooAnswer:
        timeouts = {name: _seconds(value) for name, value in self._timeout.as_dict().items()}
        for error_type, kind, template in _TRANSPORT_ERRORS:
            if isinstance(exc, error_type):
                return PartooAnswer(kind=kind, detail=template.format(**timeouts))
        return PartooAnswer(kind=OutcomeKind.UNKNOWN, detail=_MAYBE_RECEIVED_DETAIL)

    def _clean(self, text: str) -> str:
        """One short line of text, without the API key even if Partoo echoed it."""
        text = " ".join(text.replace(self._api_key, "[redacted]").split())
        if len(text) > MAX_DETAIL_LENGTH:
            text = text[: MAX_DETAIL_LENGTH - 1] + "…"
        return text


def _webhook_config(item: dict[str, object]) -> WebhookConfig:
    identifier = item.get("id")
    return WebhookConfig(
        id=identifier if isinstance(identifier, int) else None,
        event_type=str(item.get("event_type") or ""),
        url=str(item.get("url") or ""),
    )


def _retry_after(kind: OutcomeKind, header: str | None) -> float | None:
    seconds = parse_retry_after(header)
    if kind is OutcomeKind.RATE_LIMITED:
        return DEFAULT_RETRY_AFTER if seconds is None else seconds
    if kind is OutcomeKind.UNAVAILABLE:
        return seconds
    return None


def _detail(kind: OutcomeKind, status: int, body: bytes | None) -> str:
    """Partoo's explanation of a non-2xx answer, as plain text."""
    if kind is OutcomeKind.ACCEPTED:
        return ""
    if kind is OutcomeKind.UNKNOWN:
        return f"unexpected HTTP {status} answer"
    if body is None:
        return f"HTTP {status}; its body could not be read"
    if not body.strip():
        return f"HTTP {status} with an empty body"
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return f"HTTP {status} with a non-JSON body"
    errors = (data.get("errors") or data.get("error")) if isinstance(data, dict) else None
    return _render(errors) or f"HTTP {status} with no error detail"


def _render(value: object, depth: int = 0) -> str:
    """Flatten a JSON error value: `field: message; message` for dicts, `a; b` for lists."""
    if depth == _MAX_DEPTH:
        return "…"
    if isinstance(value, dict):
        parts = (
            _render(item, depth + 1) if key in _MESSAGE_KEYS else f"{key}: {_render(item, depth + 1)}"
            for key, item in value.items()
        )
        return "; ".join(part for part in parts if part)
    if isinstance(value, list):
        return "; ".join(part for part in (_render(item, depth + 1) for item in value) if part)
    if value is None:
        return ""
    return str(value)


def _seconds(value: float | None) -> str:
    return "the time allowed" if value is None else f"{value:g} s"
