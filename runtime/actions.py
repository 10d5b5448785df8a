"""What the pure state machines (aggregator, regional aggregator) ask their loops to do."""

from collections import namedtuple

__all__ = ["Persist", "Publish"]

Publish = namedtuple("Publish", "topic payload qos retain")
# Persist: save the core's state (``to_bytes``) before performing the Publish actions of the same
# batch, so an "accepted" status is only sent once the update is on disk.
Persist = namedtuple("Persist", "")
