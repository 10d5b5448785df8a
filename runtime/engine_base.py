"""The contract every inference backend implements (kept apart from ``engine``, which names the
backends in its registry, so that a backend importing its base class closes no circle)."""


class Engine(object):
    """Contract: ``infer(feed) -> outputs`` maps input names to numpy arrays and returns every
    output by name (``logits``, ``features`` for exported classifiers); ``close()`` frees
    device memory. ``manifest`` is the verified bundle manifest."""

    manifest = None

    def infer(self, feed):
        raise NotImplementedError

    def close(self):
        pass
