"""Thousands of MQTT clients in one asyncio loop, for load benchmarks (bench/load_federation.py).

A minimal MQTT 3.1.1 client — CONNECT (stable client id, persistent session), SUBSCRIBE, QoS 1
PUBLISH and PUBACK both ways — because 2,000 paho clients would be 2,000 network threads. Each
simulated client keeps one TCP connection, subscribes to its status topic and, per round,
publishes one update and waits for the aggregator's status. Payloads are built by the caller
(pre-encoded updates replayed under each client's id): the load is the broker's and the
aggregator's, not the clients' training.
"""

from __future__ import annotations

import asyncio
import struct
import time


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("!H", len(raw)) + raw


def _packet(head: int, body: bytes) -> bytes:
    return bytes([head]) + _varint(len(body)) + body


class Client:
    """One simulated client: ``statuses`` collects (topic, payload) of every status it gets."""

    def __init__(self, client_id: str, host: str, port: int):
        self.client_id, self.host, self.port = client_id, host, port
        self.reader = self.writer = None
        self.acks: dict[int, asyncio.Future] = {}
        self.next_id = 0
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.task = None

    async def connect(self, subscribe: str) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        body = _text("MQTT") + bytes([4, 0x00]) + struct.pack("!H", 0) + _text(self.client_id)
        self.writer.write(_packet(0x10, body))  # clean session off: a persistent session, keepalive off
        head, payload = await self._read()
        if head >> 4 != 2 or payload[1] != 0:
            raise RuntimeError(f"{self.client_id}: CONNACK {payload!r}")
        self.task = asyncio.ensure_future(self._loop())
        pid = self._pid()
        self.acks[pid] = asyncio.get_event_loop().create_future()
        self.writer.write(_packet(0x82, struct.pack("!H", pid) + _text(subscribe) + b"\x01"))
        await self.acks[pid]

    def _pid(self) -> int:
        self.next_id = self.next_id % 65535 + 1
        return self.next_id

    async def _read(self):
        head = (await self.reader.readexactly(1))[0]
        n, shift = 0, 0
        while True:
            b = (await self.reader.readexactly(1))[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return head, await self.reader.readexactly(n) if n else b""

    async def _loop(self) -> None:
        try:
            while True:
                head, body = await self._read()
                kind = head >> 4
                if kind in (4, 9):  # PUBACK, SUBACK
                    fut = self.acks.pop(struct.unpack("!H", body[:2])[0], None)
                    if fut is not None and not fut.done():
                        fut.set_result(time.perf_counter())
                elif kind == 3:  # PUBLISH to us: a status
                    tlen = struct.unpack("!H", body[:2])[0]
                    topic, rest = body[2 : 2 + tlen].decode(), body[2 + tlen :]
                    if (head >> 1) & 3:
                        self.writer.write(_packet(0x40, rest[:2]))
                        rest = rest[2:]
                    self.inbox.put_nowait((topic, rest))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return

    async def publish(self, topic: str, payload: bytes) -> float:
        """QoS 1; returns when the broker acknowledged it (perf_counter time)."""
        pid = self._pid()
        fut = self.acks[pid] = asyncio.get_event_loop().create_future()
        self.writer.write(_packet(0x32, _text(topic) + struct.pack("!H", pid) + payload))
        await self.writer.drain()
        return await fut

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.write(b"\xe0\x00")  # DISCONNECT
            try:
                await self.writer.drain()
            except ConnectionError:
                pass
            self.writer.close()
        if self.task is not None:
            self.task.cancel()


async def connect_all(clients: list[Client], status_topic, parallel: int = 64) -> None:
    """Connect every client (``parallel`` at a time) and subscribe it to ``status_topic(id)``."""
    gate = asyncio.Semaphore(parallel)

    async def one(c):
        async with gate:
            await c.connect(status_topic(c.client_id))

    await asyncio.gather(*(one(c) for c in clients))
