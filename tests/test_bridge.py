"""The dial path as coroutines: synchronous code on the event loop (dialer.bridge) and its Redis
commands sharing round trips (dialer.redis_bridge), against a real redis-server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import pytest
import redis
from conftest import RedisServer

from dialer import bridge
from dialer.redis_bridge import BridgedRedis


async def _value(value: int, delay_s: float = 0.0) -> int:
    await asyncio.sleep(delay_s)
    return value


async def _fail() -> None:
    await asyncio.sleep(0)
    raise ValueError("refused")


def test_synchronous_code_waits_on_the_loop_and_sees_results_and_exceptions() -> None:
    def body(n: int) -> tuple[int, str, bool]:
        assert bridge.bridged()
        bridge.sleep(0.01)  # on the loop: the other bodies run meanwhile
        try:
            bridge.wait(_fail())
        except ValueError as exc:
            caught = str(exc)
        return bridge.wait(_value(n, 0.01)), caught, bridge.bridged()

    async def main() -> tuple[list[tuple[int, str, bool]], float]:
        started = time.monotonic()
        ends = await asyncio.gather(*(bridge.run(body, n) for n in range(200)))
        return ends, time.monotonic() - started

    ends, elapsed = asyncio.run(main())
    assert ends == [(n, "refused", True) for n in range(200)]
    assert elapsed < 1.0  # 200 bodies of 20 ms each: they waited together, not one after another
    assert not bridge.bridged()


def test_an_exception_leaves_the_bridged_code_to_its_caller() -> None:
    def body() -> None:
        bridge.wait(_fail())

    with pytest.raises(ValueError, match="refused"):
        asyncio.run(bridge.run(body))


def test_outside_the_bridge_sleep_blocks_and_wait_refuses() -> None:
    started = time.monotonic()
    bridge.sleep(0.05)
    assert time.monotonic() - started >= 0.05
    coroutine = _value(1)
    with pytest.raises(RuntimeError, match=r"outside bridge\.run"):
        bridge.wait(coroutine)
    coroutine.close()


class _Counted(BridgedRedis):
    """Counts the shared round trips."""

    trips = 0

    def _round_trip(self, groups):  # type: ignore[no-untyped-def]
        self.trips += 1
        return super()._round_trip(groups)


def _run_bodies(body, count: int) -> list:  # type: ignore[no-untyped-def]
    async def main() -> list:  # type: ignore[type-arg]
        return await asyncio.gather(*(bridge.run(body, n) for n in range(count)))

    return asyncio.run(main())


def test_commands_of_many_attempts_share_round_trips_and_each_gets_its_reply(redis_url: str) -> None:
    client = _Counted.from_url(redis_url)
    script = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")

    def body(n: int) -> tuple[int, bytes | None, list[object]]:
        total = script(keys=["bridge:total"], args=[n])
        client.get_encoder()  # a helper, not a command: it must not take a reply from the round trip
        client.set(f"bridge:{n}", n)
        pipe = client.pipeline(transaction=False)
        pipe.get(f"bridge:{n}")
        pipe.hget("bridge:none", "x")
        return total, client.get(f"bridge:{n}"), pipe.execute()

    ends = _run_bodies(body, 100)
    assert [(got, piped) for _, got, piped in ends] == [(str(n).encode(), [str(n).encode(), None]) for n in range(100)]
    assert sorted(total for total, _, _ in ends)[-1] == sum(range(100))
    # 400 commands (the first script call also loads it) in far fewer round trips.
    assert client.trips < 100
    # Outside the bridge it is the plain client.
    assert client.get("bridge:7") == b"7"
    assert isinstance(client.pipeline(transaction=False), redis.client.Pipeline)


def test_a_script_the_server_lost_is_loaded_again_and_the_rest_of_the_pipeline_runs_once(redis_url: str) -> None:
    client = BridgedRedis.from_url(redis_url)
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    client.delete("bridge:runs", "bridge:others")

    def body(_: int) -> list[object]:
        pipe = client.pipeline(transaction=False)
        pipe.incr("bridge:others")
        script(keys=["bridge:runs"], client=pipe)
        return pipe.execute()

    client.script_flush()
    ends = _run_bodies(body, 5)
    assert sorted(end[1] for end in ends) == [1, 2, 3, 4, 5]
    assert client.get("bridge:others") == b"5" and client.get("bridge:runs") == b"5"
    client.script_flush()
    assert _run_bodies(lambda _: script(keys=["bridge:runs"]), 1) == [6]  # called alone, as redis-py does


class _Threads(BridgedRedis):
    """Notes which thread made each round trip."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client)
        self.threads: list[str] = []

    def _round_trip(self, groups):  # type: ignore[no-untyped-def]
        self.threads.append("loop" if threading.current_thread() is threading.main_thread() else "io")
        return super()._round_trip(groups)


#: Holds the server for ARGV[1] microseconds, as a slow or remote Redis would be.
_BUSY = """local t = redis.call('TIME'); local start = t[1] * 1000000 + t[2]
repeat local now = redis.call('TIME') until now[1] * 1000000 + now[2] - start >= tonumber(ARGV[1])
return 1"""


def test_round_trips_run_on_the_loop_while_fast_and_from_the_io_thread_after_a_slow_one(redis_url: str) -> None:
    client = _Threads.from_url(redis_url)
    client.inline_max_s = 0.02  # a ping on a busy test machine stays below it; the script does not
    busy = client.register_script(_BUSY)
    busy(args=[0])  # outside the bridge: loads the script
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.002)
            ticks += 1

    async def main() -> int:
        running = asyncio.create_task(ticker())
        await bridge.run(lambda: client.ping())  # fast: made on the loop's thread
        await bridge.run(busy, args=[100_000])  # still on the loop (the last one was fast), and slow
        before = ticks
        await bridge.run(busy, args=[100_000])  # so this one goes from the I/O thread...
        during = ticks - before  # ...and the loop ran on while Redis was busy
        await bridge.run(lambda: client.ping())  # a fast one, still from the thread
        await bridge.run(lambda: client.ping())  # and after it, back on the loop
        running.cancel()
        return during

    during = asyncio.run(main())
    assert client.threads == ["loop", "loop", "io", "io", "loop"]
    assert during >= 5


def test_a_redis_that_stops_answering_times_out_and_the_next_round_trips_leave_the_loop() -> None:
    """A partition: the server takes the connection and never answers. The round trip on the
    loop's thread ends at the socket timeout for every attempt in it (a worker's client has one,
    ``tasks.REDIS_SOCKET_TIMEOUT_S``), and the next one is made from the I/O thread."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        client = _Threads.from_url(f"redis://127.0.0.1:{silent.getsockname()[1]}", socket_timeout=0.3)

        def body(_: int) -> str:
            try:
                return str(client.get("bridge:x"))
            except redis.TimeoutError:
                return "timeout"

        assert _run_bodies(body, 3) == ["timeout"] * 3
        assert client.threads == ["loop"]  # one shared round trip for the three, and it timed out
        assert _run_bodies(body, 1) == ["timeout"]
        assert client.threads == ["loop", "io"]


def test_a_redis_outage_is_raised_to_every_waiting_attempt_and_the_client_recovers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    client = BridgedRedis.from_url(server.url, socket_connect_timeout=0.5)

    def body(_: int) -> str:
        try:
            return str(client.incr("bridge:n"))
        except redis.ConnectionError:
            return "down"

    try:
        assert sorted(_run_bodies(body, 3)) == ["1", "2", "3"]
        server.stop(sig_kill=True)
        assert _run_bodies(body, 20) == ["down"] * 20
        server.start()  # the AOF kept the counter
        assert sorted(_run_bodies(body, 2)) == ["4", "5"]
    finally:
        server.stop()
