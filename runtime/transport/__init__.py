"""Transports: how the agent and aggregator talk to an MQTT broker.

One small interface (:class:`Transport`), a paho-mqtt implementation (paho 1.6 and 2.x), an
in-memory twin for tests, and a chunking wrapper that splits payloads above a size limit.
Network callbacks only enqueue; the owner's loop calls :meth:`Transport.poll`.
"""

from collections import namedtuple

__all__ = ["Event", "Transport", "shared", "share_group_problem", "topic_matches", "Topics"]

# kind: "message" | "connected" | "disconnected"
Event = namedtuple("Event", "kind topic payload retain")
Event.__new__.__defaults__ = ("", b"", False)


class Transport(object):
    """The transport seam.

    Contract: ``connect()`` starts (re)connecting in the background; ``subscribe(filter, qos)``
    is remembered and replayed on reconnect, ``unsubscribe(filter)`` undoes it (also at the
    broker, for a persistent session); ``publish(topic, payload, qos, retain)`` never blocks on
    the network; ``poll(timeout)`` returns the events (a list of :class:`Event`) received since
    the last poll, waiting up to ``timeout`` seconds for the first one;
    ``flush(timeout)`` waits until QoS>0 publishes are acknowledged; ``close()`` disconnects
    cleanly.
    """

    client_id = ""

    def connect(self):
        raise NotImplementedError

    def subscribe(self, topic_filter, qos=1):
        raise NotImplementedError

    def unsubscribe(self, topic_filter):
        raise NotImplementedError

    def publish(self, topic, payload, qos=1, retain=False):
        raise NotImplementedError

    def poll(self, timeout=0.0):
        raise NotImplementedError

    def flush(self, timeout=10.0):
        return True

    def close(self):
        raise NotImplementedError


def shared(topic_filter, group):
    """``topic_filter`` as an MQTT 5 shared subscription of ``group`` (``$share/GROUP/filter``:
    the broker hands each matching message to one subscriber of the group), or as it is when
    ``group`` is empty. Mosquitto >= 1.6 honours it for MQTT 3.1.1 clients too."""
    return "$share/{}/{}".format(group, topic_filter) if group else topic_filter


def share_group_problem(group):
    """Why ``group`` cannot name a shared subscription's group, or None."""
    if not isinstance(group, str) or len(group) > 128 or any(ch in group for ch in "/+#\x00"):
        return "share_group must be a short string without '/', '+', '#'"
    return None


def topic_matches(topic_filter, topic):
    """MQTT topic-filter matching with ``+`` and ``#``."""
    f, t = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(f) == len(t)


class Topics(object):
    """Topic names of one federation: ``edgefl/{federation}/...``."""

    def __init__(self, federation):
        if not federation or any(c in federation for c in "/+#"):
            raise ValueError("federation name must be non-empty without '/', '+', '#'")
        self.federation = federation
        self.root = "edgefl/{}".format(federation)

    @property
    def round(self):
        """Retained: the current round announcement with the global model."""
        return self.root + "/round"

    @property
    def snapshot(self):
        """Retained: the full global model, when the round topic carries coded deltas."""
        return self.root + "/snapshot"

    def update(self, client_id):
        return "{}/update/{}".format(self.root, client_id)

    @property
    def updates(self):
        return self.root + "/update/+"

    def status(self, client_id):
        return "{}/status/{}".format(self.root, client_id)

    def online(self, client_id):
        return "{}/online/{}".format(self.root, client_id)

    def agent_status(self, client_id):
        """Agent -> operators: what the agent refused and why (e.g. an unsigned announcement)."""
        return "{}/agent-status/{}".format(self.root, client_id)

    def partial(self, station):
        """Regional aggregator -> root: the partial sums of one station (hierarchical mode)."""
        return "{}/partial/{}".format(self.root, station)

    @property
    def partials(self):
        return self.root + "/partial/+"

    def partial_status(self, station):
        """Root -> regional aggregator: a partial merged or refused."""
        return "{}/partial-status/{}".format(self.root, station)

    def forward(self, station):
        """Regional aggregator -> root: a client's resent update, unfolded (hierarchical mode)."""
        return "{}/forward/{}".format(self.root, station)

    @property
    def forwards(self):
        return self.root + "/forward/+"

    def station_from_topic(self, topic, kind):
        """The station a ``partial`` or ``forward`` topic names, else None."""
        prefix = "{}/{}/".format(self.root, kind)
        if topic.startswith(prefix) and "/" not in topic[len(prefix):]:
            return topic[len(prefix):]
        return None

    def client_from_update_topic(self, topic):
        prefix = self.root + "/update/"
        if topic.startswith(prefix) and "/" not in topic[len(prefix):]:
            return topic[len(prefix):]
        return None
