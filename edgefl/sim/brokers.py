"""Which MQTT broker a simulation talks to: a URL, or the embedded broker started for the run."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from edgefl.errors import EdgeflError

SCHEMES = {"mqtt": (1883, False), "tcp": (1883, False), "mqtts": (8883, True), "ssl": (8883, True)}


def mqtt_options_from_url(url: str) -> dict:
    """'mqtt://[user:password@]host[:port]' (or mqtts:// for TLS) → MqttOptions fields."""
    parsed = urlparse(url)
    if parsed.scheme not in SCHEMES or not parsed.hostname:
        raise EdgeflError(f"broker URL {url!r} not understood — use mqtt://host:1883 or mqtts://host:8883")
    default_port, tls = SCHEMES[parsed.scheme]
    opts = {"host": parsed.hostname, "port": parsed.port or default_port, "tls": tls}
    if parsed.username:
        opts["username"] = unquote(parsed.username)
        opts["password"] = unquote(parsed.password) if parsed.password else None
    return opts


@contextlib.contextmanager
def broker_session(url: str | None, log_path: Path | None = None) -> Iterator[dict]:
    """Yield MqttOptions fields for the broker; start (and stop) the embedded one when url is None.

    The embedded broker's log (amqtt and its asyncio loop) goes to ``log_path`` while it runs, next to
    the logs of the simulation's processes, instead of the console.
    """
    if url:
        yield mqtt_options_from_url(url)
        return
    from edgefl.broker import EmbeddedBroker

    # amqtt keeps a client's session (and its queued messages) only when it gives a username: every
    # process of a simulation sets one.
    with _log_to(log_path, ("amqtt", "asyncio")):
        with EmbeddedBroker("127.0.0.1", free_port()) as broker:
            yield {"host": broker.host, "port": broker.port}


@contextlib.contextmanager
def _log_to(path: Path | None, names: tuple[str, ...]) -> Iterator[None]:
    if path is None:
        yield
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg.propagate, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.propagate = False
        lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, (propagate, level) in zip(loggers, saved):
            lg.removeHandler(handler)
            lg.propagate, lg.level = propagate, level
        handler.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
