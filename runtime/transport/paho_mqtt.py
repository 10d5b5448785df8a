"""MQTT transport over paho-mqtt 1.6 (Python 3.6, JetPack 4.6) and paho-mqtt 2.x.

paho 2.x wants a ``CallbackAPIVersion``; 1.6 has none and calls v1 signatures. The callbacks
here take ``*args`` and read only the positions both versions share, so one code path serves
both. Callbacks run on paho's network thread and only put events on a queue.

Persistent sessions: a stable ``client_id`` with ``clean_session=False`` (MQTT 3.1.1), so QoS 1
messages queue at the broker while the client is out of contact.
"""

import queue
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Optional

from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.transport import Event, Transport


@dataclass
class MqttOptions:
    """Connection settings (all JSON-friendly, so they fit in a config file)."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: Optional[str] = None
    password: Optional[str] = None
    tls: bool = False
    ca_certs: Optional[str] = None
    certfile: Optional[str] = None
    keyfile: Optional[str] = None
    tls_insecure: bool = False
    keepalive: int = 30
    clean_session: bool = False
    max_inflight: int = 20


def _new_client(mqtt, client_id, clean_session):
    if hasattr(mqtt, "CallbackAPIVersion"):  # paho >= 2.0
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                           clean_session=clean_session, protocol=mqtt.MQTTv311)
    return mqtt.Client(client_id=client_id, clean_session=clean_session,
                       protocol=mqtt.MQTTv311)


def _acked(info):
    """Whether a QoS>0 publish was acknowledged.

    A publish made while disconnected stays queued in paho and goes out after the reconnect,
    but its MessageInfo keeps rc=MQTT_ERR_NO_CONN, so ``is_published()`` raises RuntimeError
    forever (paho 1.6 and 2.x): read the acknowledgement flag instead.
    """
    try:
        return info.is_published()
    except RuntimeError:
        return bool(getattr(info, "_published", False))


def _failed(rc):
    """True when a connect result (int in paho 1.x, ReasonCode in 2.x) is a failure."""
    if hasattr(rc, "is_failure"):
        return rc.is_failure
    return int(rc) != 0


class PahoTransport(Transport):
    """A paho-mqtt client behind the :class:`Transport` seam.

    ``max_queued_bytes`` (0: no bound) bounds the payload bytes received and not yet polled:
    above it paho's network thread waits for the owner to poll, so it stops reading the socket
    and the broker holds the rest (backpressure) instead of this process's memory growing with
    whatever a client floods in. One message larger than the bound still passes, alone.
    """

    def __init__(self, client_id, options=None, will_topic=None, will_payload=b"",
                 max_queued_bytes=0):
        import paho.mqtt.client as mqtt  # edge dependency, imported where used

        self.client_id = client_id
        self.options = options or MqttOptions()
        self._mqtt = mqtt
        self._events = queue.Queue()
        self.max_queued_bytes = max_queued_bytes
        self._queued = 0  # payload bytes in _events
        self._room = threading.Condition()
        self._closing = False
        self._subs = {}
        self._unsubs = set()  # sent again on every (re)connect: a persistent session keeps them
        self._pending = []
        self._lock = threading.Lock()
        self.last_error = None
        c = _new_client(mqtt, client_id, self.options.clean_session)
        o = self.options
        if o.username is not None:
            c.username_pw_set(o.username, o.password)
        if o.tls or o.ca_certs:
            c.tls_set(ca_certs=o.ca_certs, certfile=o.certfile, keyfile=o.keyfile,
                      cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            c.tls_insecure_set(bool(o.tls_insecure))
        if will_topic:
            c.will_set(will_topic, will_payload, qos=1, retain=True)
        c.max_inflight_messages_set(o.max_inflight)
        c.reconnect_delay_set(1, 30)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self._client = c

    # --- network thread: enqueue only -------------------------------------------------------
    def _on_connect(self, client, userdata, flags, rc, *rest):
        if _failed(rc):
            self.last_error = "connection refused: {}".format(rc)
            self._events.put(Event("disconnected", str(rc)))
            return
        with self._lock:
            subs, unsubs = list(self._subs.items()), sorted(self._unsubs)
        for f, q in subs:  # replayed on every (re)connect
            client.subscribe(f, q)
        for f in unsubs:
            client.unsubscribe(f)
        self._events.put(Event("connected"))

    def _on_disconnect(self, client, userdata, *args):
        self._events.put(Event("disconnected"))

    def _on_message(self, client, userdata, msg):
        payload = bytes(msg.payload)
        if self.max_queued_bytes:
            with self._room:
                while (self._queued and self._queued + len(payload) > self.max_queued_bytes
                       and not self._closing):
                    self._room.wait(1.0)
                self._queued += len(payload)
        self._events.put(Event("message", msg.topic, payload, bool(msg.retain)))

    # --- owner's thread ---------------------------------------------------------------------
    def connect(self, timeout=None):
        o = self.options
        try:
            self._client.connect_async(o.host, int(o.port), keepalive=int(o.keepalive))
        except (OSError, ValueError) as exc:
            raise EdgeRuntimeError("cannot reach MQTT broker {}:{} ({}) — check host/port".format(
                o.host, o.port, exc))
        self._client.loop_start()

    def subscribe(self, topic_filter, qos=1):
        with self._lock:
            self._subs[topic_filter] = qos
            self._unsubs.discard(topic_filter)
        self._client.subscribe(topic_filter, qos)

    def unsubscribe(self, topic_filter):
        with self._lock:
            self._subs.pop(topic_filter, None)
            self._unsubs.add(topic_filter)
        self._client.unsubscribe(topic_filter)

    def publish(self, topic, payload, qos=1, retain=False):
        info = self._client.publish(topic, bytes(payload), qos=qos, retain=retain)
        if qos > 0:
            self._pending = [i for i in self._pending if not _acked(i)] + [info]

    def poll(self, timeout=0.0):
        out = []
        try:
            out.append(self._events.get(timeout=timeout) if timeout > 0 else
                       self._events.get_nowait())
            while True:
                out.append(self._events.get_nowait())
        except queue.Empty:
            pass
        if self.max_queued_bytes and out:
            with self._room:
                self._queued -= sum(len(e.payload) for e in out)
                self._room.notify_all()
        return out

    def flush(self, timeout=10.0):
        """Wait until every QoS>0 publish was acknowledged (True) or ``timeout`` passes."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self._pending = [i for i in self._pending if not _acked(i)]
            if not self._pending:
                return True
            time.sleep(0.02)
        return False

    def close(self):
        with self._room:  # a network thread waiting for room must not hold up the disconnect
            self._closing = True
            self._room.notify_all()
        self.flush(5.0)
        self._client.disconnect()
        self._client.loop_stop()
