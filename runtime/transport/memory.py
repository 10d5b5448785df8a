"""An in-memory broker and transport (retained messages, persistent sessions, QoS-1 queueing).

Deterministic and synchronous: a publish is delivered to every matching subscriber's inbox at
once; a disconnected client with a persistent session (``clean_session=False``) gets its QoS>=1
messages queued until it reconnects, like Mosquitto.
"""

import threading
import time
from collections import deque

from edgefl.runtime.transport import Event, Transport, topic_matches


class _Session(object):
    def __init__(self):
        self.subscriptions = {}  # filter -> qos
        self.inbox = deque()
        self.connected = False


class MemoryBroker(object):
    """Holds retained messages and client sessions; share one between transports."""

    def __init__(self, max_payload=None):
        self.retained = {}
        self.sessions = {}
        self.max_payload = max_payload
        self.published = []  # (client_id, topic, len(payload)) for byte accounting in tests
        self.lock = threading.RLock()  # loops may run in threads

    def _deliver(self, topic, payload, qos, retain):
        for sess in self.sessions.values():
            match = [q for f, q in sess.subscriptions.items() if topic_matches(f, topic)]
            if not match:
                continue
            if sess.connected or (min(qos, max(match)) >= 1):
                sess.inbox.append(Event("message", topic, payload, False))

    def publish(self, client_id, topic, payload, qos, retain):
        with self.lock:
            self._publish(client_id, topic, payload, qos, retain)

    def _publish(self, client_id, topic, payload, qos, retain):
        if self.max_payload is not None and len(payload) > self.max_payload:
            raise ValueError("payload of {} bytes above broker limit {}".format(
                len(payload), self.max_payload))
        self.published.append((client_id, topic, len(payload)))
        if retain:
            if payload:
                self.retained[topic] = payload
            else:
                self.retained.pop(topic, None)
        self._deliver(topic, payload, qos, retain)


class MemoryTransport(Transport):
    """A client of :class:`MemoryBroker`."""

    def __init__(self, broker, client_id, clean_session=False):
        self.broker, self.client_id, self.clean_session = broker, client_id, clean_session
        self.session = None

    def connect(self):
        with self.broker.lock:
            self._connect()

    def _connect(self):
        sess = self.broker.sessions.get(self.client_id)
        if sess is None or self.clean_session:
            sess = _Session()
            self.broker.sessions[self.client_id] = sess
        sess.connected = True
        self.session = sess
        sess.inbox.appendleft(Event("connected"))

    def subscribe(self, topic_filter, qos=1):
        with self.broker.lock:
            self._subscribe(topic_filter, qos)

    def _subscribe(self, topic_filter, qos):
        self.session.subscriptions[topic_filter] = qos
        for topic, payload in sorted(self.broker.retained.items()):
            if topic_matches(topic_filter, topic):
                self.session.inbox.append(Event("message", topic, payload, True))

    def unsubscribe(self, topic_filter):
        with self.broker.lock:
            sess = self.session or self.broker.sessions.get(self.client_id)
            if sess is not None:
                sess.subscriptions.pop(topic_filter, None)

    def publish(self, topic, payload, qos=1, retain=False):
        if self.session is None or not self.session.connected:
            raise RuntimeError("not connected")
        self.broker.publish(self.client_id, topic, bytes(payload), qos, retain)

    def poll(self, timeout=0.0):
        end = time.time() + timeout
        while True:
            with self.broker.lock:
                if self.session is None or not self.session.connected:
                    return []
                out = list(self.session.inbox)
                self.session.inbox.clear()
            if out or time.time() >= end:
                return out
            time.sleep(min(0.01, timeout))

    def close(self):
        with self.broker.lock:
            self._close()

    def _close(self):
        if self.session is not None:
            self.session.connected = False
            if self.clean_session:
                self.broker.sessions.pop(self.client_id, None)
        self.session = None
