"""An embedded MQTT broker (amqtt 0.12) for trying federations without a system broker.

amqtt speaks MQTT 3.1.1 only. With ``allow_anonymous: true`` amqtt treats every session as
anonymous and DROPS it on disconnect (queued QoS-1 messages are lost), so this broker refuses
clients without a username: agents and aggregators must set one (any name; no password check).
Use Mosquitto (or a clustered broker) for anything beyond a demo: it is faster and supports
MQTT 5, TLS listeners with ACLs, and persistence.
"""

import asyncio
import threading

from edgefl.errors import EdgeflError


def broker_config(host: str = "127.0.0.1", port: int = 1883) -> dict:
    """amqtt configuration: one TCP listener; a username is required (see module docstring)."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False}},
    }


class EmbeddedBroker:
    """amqtt running on its own event loop in a background thread.

    Usage::

        with EmbeddedBroker(port=1883) as broker:
            ...  # clients connect to broker.host:broker.port with a username
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883):
        self.host, self.port = host, int(port)
        self._loop = None
        self._broker = None
        self._thread = None
        self._ready = threading.Event()
        self._error = None

    def _run(self):
        from amqtt.broker import Broker

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def start():
            self._broker = Broker(broker_config(self.host, self.port), loop=loop)
            await self._broker.start()

        try:
            loop.run_until_complete(start())
        except Exception as exc:  # reported to the caller of start(), which raises EdgeflError
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    def start(self, timeout: float = 15.0) -> "EmbeddedBroker":
        try:
            import amqtt  # noqa: F401
        except ImportError:
            raise EdgeflError(
                "the embedded broker needs amqtt — pip install 'edgefl[host]' or use Mosquitto"
            ) from None
        self._thread = threading.Thread(target=self._run, name="edgefl-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise EdgeflError(f"the embedded broker did not start within {timeout:.0f}s — try another --port")
        if self._error is not None:
            raise EdgeflError(
                f"the embedded broker could not listen on {self.host}:{self.port} "
                f"({self._error}) — pick a free --port, or an address of this machine for --host"
            )
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._broker is not None and self._loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                fut.result(timeout)
            except Exception:  # best effort: the loop is stopped below either way
                pass
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SystemMosquitto:
    """A throwaway Mosquitto process on a free loopback port (benchmarks, demos).

    Usage::

        with SystemMosquitto() as mq:
            ...  # mq.host, mq.port
    """

    def __init__(self, port: int = 0, binary: str = None, extra_conf: str = ""):
        import shutil

        self.binary = binary or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.host, self.port, self.extra_conf = "127.0.0.1", int(port), extra_conf
        self.proc = None
        self.workdir = None

    def start(self, timeout: float = 10.0) -> "SystemMosquitto":
        import os
        import socket
        import subprocess
        import tempfile
        import time

        if not os.path.exists(self.binary):
            raise EdgeflError(
                "mosquitto is not installed — apt-get install mosquitto, or use `edgefl broker`"
            )
        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        self.workdir = tempfile.mkdtemp(prefix="edgefl-mosquitto-")
        conf = os.path.join(self.workdir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 10000\n"
                f"message_size_limit 0\n{self.extra_conf}\n"
            )
        self._log = open(os.path.join(self.workdir, "mosquitto.log"), "ab")
        self.proc = subprocess.Popen([self.binary, "-c", conf], stdout=self._log, stderr=subprocess.STDOUT)
        end = time.time() + timeout
        while time.time() < end:
            try:
                socket.create_connection((self.host, self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise EdgeflError(f"mosquitto did not start on port {self.port} — see its log in {self.workdir}")

    def stop(self) -> None:
        import shutil

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self.workdir:
            self._log.close()
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
