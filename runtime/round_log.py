"""Per-round records of a federation: central evaluation, time, bytes each way.

After each closed round (sync) or new model version (async) the serve loop hands the history entry
to a :class:`RoundRecorder` (its ``on_round``). The recorder scores the new global model with an
:class:`~edgefl.runtime.evaluation.Evaluator` when one is given, adds what it measured to the entry
(so it reaches the state file and the JSON output), appends one JSON line per round to a metrics file
a notebook or ``edgefl report`` reads, and publishes the round's summary, retained, on
``edgefl/{federation}/status``: the line's numbers as metrics, the clients that took part and the
evaluated model's digest as params, the digest the round started from as ``base_digest``. That
topic is the summary's only place on the wire: announcements carry what clients need to train.

Times: ``round_s`` runs from the announcement that opened the round to its close; ``eval_s`` is the
evaluation alone, which runs while the clients already train the next round. Bytes: ``bytes_up`` is
the accepted updates as received; ``bytes_down`` is the announcement that opened the round times the
clients that took part, plus the status replies sent during the round (with coded-delta
announcements, the full snapshot retained beside each delta is not in it: the clients that fetch
it count it, ``AgentCore.received``).
"""

import json
import time

from edgefl.runtime.transport import Transport
from edgefl.runtime.wire import Message, encode_message, model_digest

STATUS = "/status"  # under the federation's root: edgefl/{federation}/status


class CountingTransport(Transport):
    """Wraps a transport and notes (time, topic, bytes) of every publish until ``take()``."""

    def __init__(self, inner, clock=time.time):
        self.inner, self.clock = inner, clock
        self.client_id = getattr(inner, "client_id", "")
        self.published = []

    def take(self):
        out, self.published = self.published, []
        return out

    def connect(self):
        return self.inner.connect()

    def subscribe(self, topic_filter, qos=1):
        return self.inner.subscribe(topic_filter, qos)

    def publish(self, topic, payload, qos=1, retain=False):
        self.published.append((self.clock(), topic, len(payload)))
        return self.inner.publish(topic, payload, qos, retain)

    def poll(self, timeout=0.0):
        return self.inner.poll(timeout)

    def flush(self, timeout=10.0):
        return self.inner.flush(timeout)

    def close(self):
        return self.inner.close()

    @property
    def log(self):  # the loop drains the inner transport's log lines through its owner
        return getattr(self.inner, "log", None)

    @property
    def last_error(self):
        return getattr(self.inner, "last_error", None)


def metrics_row(entry, federation, mode):
    """One JSON-lines row (flat, plot-ready) from an enriched history entry (pure)."""
    ev = entry.get("eval") or {}
    row = {"federation": federation, "mode": mode, "round": entry["round"], "time": entry.get("time"),
           "elapsed_s": entry.get("elapsed_s"), "round_s": entry.get("round_s"),
           "eval_s": ev.get("seconds"), "clients": len(entry.get("clients", [])),
           "examples": entry.get("num_examples"), "bytes_up": entry.get("bytes_in"),
           "bytes_down": entry.get("bytes_down"), "announcement_bytes": entry.get("announcement_bytes"),
           "snapshot_bytes": entry.get("snapshot_bytes"), "fold_error_bound": entry.get("fold_error_bound"),
           "rejected": entry.get("rejected"), "accuracy": ev.get("accuracy"), "loss": ev.get("loss"),
           "eval_examples": ev.get("examples"), "model_digest": ev.get("model_digest")}
    row.update(("client_" + k, v) for k, v in sorted((entry.get("client_metrics") or {}).items()))
    return row


class RoundRecorder(object):
    """``on_round`` for ``serve_aggregator`` (see the module docstring).

    Args:
        core: the AggregatorCore being served (its ``global_model`` is the model just made).
        transport: the :class:`CountingTransport` the loop publishes through.
        evaluator: an Evaluator, or None (times and bytes only).
        metrics_path: JSON-lines file appended to (one line per round), or None.
        then: called with each enriched entry afterwards (e.g. a log line).
    """

    def __init__(self, core, transport, evaluator=None, metrics_path=None, then=None, clock=time.time):
        self.core, self.transport, self.evaluator = core, transport, evaluator
        self.metrics_path, self.then, self.clock = metrics_path, then, clock
        self.opened = None  # (time, bytes) of the announcement that opened the current round
        self.first = None

    def __call__(self, entry):
        now = self.clock()
        round_topic, snapshot_topic = self.core.topics.round, self.core.topics.snapshot
        published = self.transport.take()
        announces = [(t, n) for t, topic, n in published if topic == round_topic]
        # the retained snapshot goes to the broker once; only clients that miss a delta fetch it
        status = sum(n for _, topic, n in published if topic not in (round_topic, snapshot_topic))
        opened = self.opened or (announces[0] if announces else (now, 0))
        self.opened = announces[-1] if announces else opened
        self.first = self.first or opened[0]
        entry.update({"time": round(now, 3), "elapsed_s": round(now - self.first, 3),
                      "round_s": round(now - opened[0], 3), "announcement_bytes": opened[1],
                      "bytes_down": opened[1] * len(entry.get("clients", [])) + status})
        if self.evaluator is not None:
            entry["eval"] = self._evaluate()
        row = metrics_row(entry, self.core.cfg.federation, self.core.cfg.mode)
        if self.metrics_path:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(row, sort_keys=True) + "\n")
        self._publish_status(row, entry)
        if self.then:
            self.then(entry)

    def _evaluate(self):
        model = self.core.global_model
        start = self.clock()
        scores = self.evaluator.evaluate(model)
        return {"accuracy": float(scores["accuracy"]), "loss": float(scores["loss"]),
                "examples": int(scores["examples"]), "seconds": round(self.clock() - start, 3),
                "model_digest": model_digest(model)}

    def _publish_status(self, row, entry):
        numbers = dict((k, float(v)) for k, v in row.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool))
        msg = Message(kind="status", federation=self.core.cfg.federation, round=int(row["round"]),
                      base_digest=str(entry.get("base_digest") or ""), encoding="", metrics=numbers,
                      params={"model_digest": row.get("model_digest") or "",
                              "clients": [str(c) for c in entry.get("clients", [])]})
        # straight to the inner transport: the status line is not part of the next round's bytes
        self.transport.inner.publish(self.core.topics.root + STATUS, encode_message(msg), 1, True)
