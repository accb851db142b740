"""Each HTTP request runs under a request id: the router's X-Request-ID when sane, a fresh one otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.platform import correlation
from bot.platform.request_id import RequestIdMiddleware

seen_later: list[str | None] = []


async def echo(_request: Request) -> JSONResponse:
    async def after_the_answer() -> None:
        seen_later.append(correlation.current())

    # As Bolt does with the rest of a listener after ack(): a task started inside the request.
    await asyncio.create_task(after_the_answer())
    return JSONResponse({"request_id": correlation.current()})


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[Route("/", echo)], middleware=[Middleware(RequestIdMiddleware)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as client:
        yield client


async def test_a_fresh_id_per_request_returned_in_the_header(http: httpx.AsyncClient) -> None:
    first, second = await http.get("/"), await http.get("/")
    ids = [response.json()["request_id"] for response in (first, second)]
    assert all(ids)
    assert ids[0] != ids[1]
    assert [first.headers["X-Request-ID"], second.headers["X-Request-ID"]] == ids
    assert seen_later[-2:] == ids
    assert correlation.current() is None


async def test_the_routers_id_is_reused(http: httpx.AsyncClient) -> None:
    router_id = "6a5b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
    response = await http.get("/", headers={"X-Request-ID": router_id})
    assert response.json()["request_id"] == router_id
    assert response.headers["X-Request-ID"] == router_id


@pytest.mark.parametrize("odd", ["short", "x" * 200, "has spaces in it", "line\\nbreak-injected"])
async def test_an_odd_incoming_id_is_replaced(http: httpx.AsyncClient, odd: str) -> None:
    response = await http.get("/", headers={"X-Request-ID": odd})
    assert response.json()["request_id"] != odd
    assert response.headers["X-Request-ID"] == response.json()["request_id"]
