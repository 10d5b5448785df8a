"""Which MQTT broker a simulation talks to: a URL, or the embedded broker started for the run."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
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
def broker_session(url: str | None) -> Iterator[dict]:
    """Yield MqttOptions fields for the broker; start (and stop) the embedded one when url is None."""
    if url:
        yield mqtt_options_from_url(url)
        return
    from edgefl.broker import EmbeddedBroker

    # amqtt keeps a client's session (and its queued messages) only when it gives a username: every
    # process of a simulation sets one.
    with EmbeddedBroker("127.0.0.1", free_port()) as broker:
        yield {"host": broker.host, "port": broker.port}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
