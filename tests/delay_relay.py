"""A test helper: a TCP relay that delays every chunk of data by a fixed time, each way.

It stands for the latency of a cellular link, which the kernel here cannot add: it has no
netem qdisc, and no other qdisc delays packets (fq would honour departure times a BPF
program set, but fq is missing too). So the bus connects to this relay, which forwards to
the broker on loopback, holding what it reads for `delay_s` before writing it on, in order,
both ways: an MQTT PUBACK comes back at least 2 × `delay_s` after the PUBLISH. A connection
closed on one side is closed on the other once what was read before has been delivered;
`cut` resets them all.

What it does not model: the relay terminates TCP, so the bus's TCP sees the delay only in
MQTT's replies, not in its own acknowledgements (its retransmission timer works on the
short veth's round trip). Packet loss, which TCP does see, is the kernel's (tests/netns.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

CHUNK = 65536


class DelayRelay:
    def __init__(self, listen_host: str, target_port: int, delay_s: float) -> None:
        self.listen_host = listen_host
        self.target_port = target_port
        self.delay_s = delay_s
        self.port = 0  # chosen when it starts
        self.connections = 0  # accepted so far: each reconnection of the bus is one more
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-relay",
                                        daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    def start(self) -> DelayRelay:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, self.listen_host, 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        """Reset every open connection, as a cell handover that loses the TCP session."""
        def reset() -> None:
            for writer in self._open:
                writer.transport.abort()

        self._loop.call_soon_threadsafe(reset)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        self._open |= {client_w, broker_w}
        pumps = asyncio.gather(self._pump(client_r, broker_w), self._pump(broker_r, client_w))
        try:
            await pumps
        except OSError:
            pass  # one side reset: both are closed below, as a lost link would
        except asyncio.CancelledError:
            pass  # the relay stops
        finally:
            pumps.cancel()
            for writer in (client_w, broker_w):
                writer.close()
                self._open.discard(writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await held.get()
                await asyncio.sleep(max(0.0, due - self._loop.time()))
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        delivering = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(CHUNK)
                await held.put((self._loop.time() + self.delay_s, data))
                if not data:
                    break
            await delivering
        finally:
            delivering.cancel()


@contextmanager
def delay_relay(listen_host: str, target_port: int, delay_s: float) -> Iterator[DelayRelay]:
    relay = DelayRelay(listen_host, target_port, delay_s).start()
    try:
        yield relay
    finally:
        relay.stop()
