"""What a federation costs on one machine: bytes on the clients' links, peak memory of process trees.

- :class:`ByteRelay` is a TCP relay on loopback: clients connect to it instead of the server (the MQTT
  broker, Flower's SuperLink) and every byte each way is counted — protocol framing, connection setup
  and heartbeats included, as they would cross a radio link.
- :class:`RssSampler` polls the resident memory of whole process trees (a Flower SuperNode and the
  ClientApp processes it starts; an edgefl agent) and keeps each tree's peak.
- :func:`start` / :func:`stop` run a command in its own session and end it with all it started.
"""

import asyncio
import os
import signal
import subprocess
import threading
import time
from pathlib import Path


class ByteRelay:
    """Relay ``127.0.0.1:port`` → ``target`` and count the bytes (``up``: towards the target)."""

    def __init__(self, target_port: int, host: str = "127.0.0.1"):
        self.target = (host, int(target_port))
        self.up = self.down = self.connections = 0
        self.port = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "ByteRelay":
        self._thread.start()
        self._ready.wait(10)
        return self

    def totals(self) -> dict:
        return {"up": self.up, "down": self.down, "connections": self.connections}

    def close(self):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, reader, writer):
        self.connections += 1
        try:
            t_reader, t_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, t_writer, "up"), self._pipe(t_reader, writer, "down"))

    async def _pipe(self, reader, writer, direction):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                setattr(self, direction, getattr(self, direction) + len(data))
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


def tree(pid: int) -> list:
    """``pid`` and every process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def rss_mb(pids) -> float:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024.0


class RssSampler:
    """Peak resident memory (MB) of named process trees, sampled every ``every`` seconds."""

    def __init__(self, every: float = 0.2):
        self.every, self.roots, self.peaks = every, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, name: str, *pids: int):
        self.roots[name] = pids
        self.peaks.setdefault(name, 0.0)

    def start(self) -> "RssSampler":
        self._thread.start()
        return self

    def close(self) -> dict:
        self._stop.set()
        self._thread.join(10)
        return dict(self.peaks)

    def _run(self):
        while not self._stop.wait(self.every):
            for name, pids in list(self.roots.items()):
                now = rss_mb([p for root in pids for p in tree(root)])
                self.peaks[name] = max(self.peaks[name], now)


def start(cmd, log: Path, env=None, cwd=None) -> subprocess.Popen:
    """Run ``cmd`` niced, in its own session (so :func:`stop` ends whatever it starts), output to ``log``."""
    f = open(log, "ab")
    return subprocess.Popen(["nice", "-n", "10", *map(str, cmd)], stdout=f, stderr=subprocess.STDOUT,
                            env=env, cwd=cwd, start_new_session=True)


def stop(procs, grace: float = 10.0):
    """End each process's session: SIGTERM, then SIGKILL after ``grace`` seconds."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    end = time.time() + grace
    for p in procs:
        try:
            p.wait(max(0.1, end - time.time()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # stragglers of the session, e.g. orphaned children
        except ProcessLookupError:
            pass
        p.wait()
