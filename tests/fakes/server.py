"""A loopback HTTP server running an aiohttp application in a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from aiohttp import web

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_STARTUP_TIMEOUT = 10.0
_SHUTDOWN_TIMEOUT = 10.0


class Gate:
    """Holds requests back until released; safe to release from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._released = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def released(self) -> bool:
        with self._lock:
            return self._released

    @property
    def waiting(self) -> int:
        """Requests held at this gate now (a request recorded by a fake may not have reached its gates yet)."""
        with self._lock:
            return len(self._waiters)

    def release(self) -> None:
        """Let every held request through, and every later one."""
        with self._lock:
            self._released = True
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            # The waiter lives on the server's loop; it may already be closed when the server stopped first.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self) -> None:
        """Block the calling request until released."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._released:
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        await future

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class FakeServer:
    """Base of the fakes: subclasses add routes in `build_app` and guard their state with `self._lock`."""

    def __init__(self) -> None:
        # Handlers run on the server thread while tests read from theirs: one lock guards all state.
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._gates: list[Gate] = []
        self._port: int | None = None
        self._in_flight = 0
        self._max_in_flight = 0

    def build_app(self) -> web.Application:
        """Return the aiohttp application to serve."""
        raise NotImplementedError

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Start serving on a free loopback port; returns once the socket listens."""
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name=f"{type(self).__name__}-server", daemon=True
        )
        self._thread.start()
        if not ready.wait(_STARTUP_TIMEOUT):
            raise RuntimeError(f"{type(self).__name__} did not start within {_STARTUP_TIMEOUT} s")
        if failure:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"{type(self).__name__} failed to start") from failure[0]
        return self

    def stop(self) -> None:
        """Release held requests, stop serving and join the thread; safe to call twice."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        with self._lock:
            gates = list(self._gates)
        for gate in gates:
            gate.release()
        if loop is not None and stopping is not None and not loop.is_closed():
            # Setting the event wakes pending delays, so in-flight handlers finish promptly.
            loop.call_soon_threadsafe(stopping.set)
        thread.join(_SHUTDOWN_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"{type(self).__name__} did not stop within {_SHUTDOWN_TIMEOUT} s")
        self._thread = None

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered (held, delayed or being handled)."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests in flight at once since start or `forget_max_in_flight()`."""
        with self._lock:
            return self._max_in_flight

    def forget_max_in_flight(self) -> None:
        with self._lock:
            self._max_in_flight = self._in_flight

    def hold(self) -> Gate:
        """Hold every request until the returned gate is released or the fake stops (see `in_flight`)."""
        gate = Gate()
        with self._lock:
            self._gates.append(gate)
        return gate

    async def pass_gates(self) -> None:
        """Wait, inside a handler, for every gate that is still held."""
        with self._lock:
            gates = [gate for gate in self._gates if not gate.released]
            # A copy: a gate made while this request waits holds the requests after it, not this one.
            self._gates = list(gates)
        for gate in gates:
            await gate.wait()

    async def pause(self, seconds: float) -> None:
        """Sleep inside a handler, cut short when the fake stops."""
        if seconds <= 0:
            return
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    @staticmethod
    def drop(request: web.Request) -> web.Response:
        """Close the connection without an HTTP answer; the returned response is never written."""
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=499)

    @web.middleware
    async def _count_in_flight(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            return await handler(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            try:
                runner = loop.run_until_complete(self._listen())
            except BaseException as exc:
                failure.append(exc)
                return
            finally:
                ready.set()
            assert self._stopping is not None
            loop.run_until_complete(self._stopping.wait())
            loop.run_until_complete(runner.cleanup())
        finally:
            loop.close()

    async def _listen(self) -> web.AppRunner:
        self._stopping = asyncio.Event()
        # shutdown_timeout bounds how long cleanup waits for handlers not waiting in pause() or a gate.
        app = self.build_app()
        app.middlewares.append(self._count_in_flight)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        # Binding the socket ourselves gives the real port without reaching into aiohttp internals.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        return runner

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
