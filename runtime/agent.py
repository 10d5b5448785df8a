"""The agent as a pure state machine: round announcements in, training jobs and updates out.

The loop (``edgefl.runtime.loops.run_agent``) feeds it messages, runs the :class:`Trainer` it
asks for and publishes what it returns. The agent remembers the last round it contributed to
(persisted, with the codec's error-feedback residual) so a restart never trains a round twice.

With the aggregator's public key (``AgentConfig.announce_key``) it loads only announcements
signed with the aggregator's key (``edgefl.runtime.announce``), and never one older than the
newest it loaded (``model_round``, persisted): a refused announcement leaves the current one in
place and is reported in the log and on the agent's status topic (``outbox``).

Delivery is at least once, end to end: an update counts as delivered only when the aggregator's
status for its round says accepted or rejected. Until then the agent keeps it (persisted too)
and :meth:`AgentCore.resends` hands it out again when its round is re-announced by a restarted
aggregator (a newer ``epoch``) or ``resend_s`` passes. MQTT's own acknowledgements cannot give
this: the broker's PUBACK only says the broker has it, and paho 1.6 acknowledges a message to
the broker as soon as it arrives, before the aggregator has validated and persisted it. The
aggregator accepts one update per (client, version), so a resend that was already counted is
rejected as a duplicate.

It keeps the model it loaded (``model``, persisted with its digest): a round announcement that
is a coded delta (``edgefl.runtime.downlink``) applies to it when the delta names its digest, and
the rebuilt model must match the announced digest. Otherwise (a version missed, a late start, no
state) the agent subscribes to the retained full snapshot, loads it, and unsubscribes
(``subscriptions()`` says what the loop must be subscribed to now).
"""

import json
from collections import OrderedDict, namedtuple
from dataclasses import dataclass

import numpy as np

from edgefl.runtime.announce import AnnouncementVerifier
from edgefl.runtime.codecs import make_codec
from edgefl.runtime.downlink import DELTA_FIELD, apply_announcement, tensors_problem
from edgefl.runtime.errors import EdgeRuntimeError, WireError, fault_location
from edgefl.runtime.schema import model_problem, params_problem
from edgefl.runtime.transport import Topics
from edgefl.runtime.wire import Message, decode_message, decode_tensors, encode_message, \
    encode_tensors, model_digest, payload_digest

TrainJob = namedtuple("TrainJob", "round global_model options")
TrainResult = namedtuple("TrainResult", "tensors num_examples metrics")


class Trainer(object):
    """Local training.

    Contract: ``train(global_model, options) -> TrainResult`` where ``global_model`` maps names
    to float32 arrays (do not modify them), ``options`` is the round's ``train`` dict
    (epochs, lr, batch_size, prox_mu, ...) and the result's ``tensors`` hold the locally trained
    values for the same names and shapes.
    """

    def train(self, global_model, options):
        raise NotImplementedError


@dataclass
class AgentConfig:
    federation: str
    client_id: str
    seed: int = 0
    announce_key: str = ""  # the aggregator's Ed25519 public key (hex); "" accepts unsigned rounds
    max_examples: int = 0  # the count this client declared: it never claims more (0: no bound)
    resend_s: float = 60.0  # resend an update with no status after this long


class Pending(object):
    """The last update, kept until a status for its round arrives."""

    __slots__ = ("round", "topic", "payload", "sent_at", "epoch", "due")

    def __init__(self, round_, topic, payload, sent_at, epoch=None):
        self.round, self.topic, self.payload = round_, topic, payload
        self.sent_at, self.epoch, self.due = sent_at, epoch, False


class AgentCore(object):
    """See module docstring. ``log`` collects (kind, text) lines for the loop to print."""

    def __init__(self, config):
        if not config.client_id or any(c in config.client_id for c in "/+#"):
            raise EdgeRuntimeError("client id must be non-empty without '/', '+', '#' — set "
                                   "client_id in the agent config")
        if type(config.max_examples) is not int or config.max_examples < 0:
            raise EdgeRuntimeError("max_examples must be a non-negative integer (the count this "
                                   "client declared) — fix the agent config")
        self.cfg = config
        self.topics = Topics(config.federation)
        self.verifier = AnnouncementVerifier(config.announce_key) if config.announce_key else None
        self.last_round = 0
        self.model_round = 0  # newest announced round loaded: older ones are refused
        self.model = None  # the global model of model_round (name -> float32), as loaded
        self.model_digest = ""
        self.want_snapshot = True  # subscribe to the retained full snapshot until a model loads
        self.received = {"round": 0, "snapshot": 0, "status": 0}  # bytes received, per topic
        self.outbox = []  # (topic, payload) for the loop to publish at QoS 1
        self.codec_state = {}
        self.current = None  # the newest round Message not yet handled
        self.done = False
        self.statuses = []  # (round, accepted, reason)
        self.pending = None  # Pending: the update not yet answered by a status
        self.log = []

    def subscriptions(self):
        """The topics to be subscribed to now (the snapshot only while the agent needs it)."""
        subs = [self.topics.round, self.topics.status(self.cfg.client_id)]
        return subs + ([self.topics.snapshot] if self.want_snapshot else [])

    def on_demand_subscriptions(self):
        """Topics ``subscriptions()`` may add and drop again."""
        return [self.topics.snapshot]

    def preload(self, tensors):
        """Start from a model this client already holds (its bundle's, the federation's initial
        model), so a first delta applies without a snapshot; no-op once a model is loaded."""
        if self.model is None:
            self._hold(OrderedDict((n, np.array(v, np.float32)) for n, v in sorted(tensors.items())),
                       None)

    def _hold(self, model, digest):
        self.model, self.model_digest = model, digest or model_digest(model)
        self.want_snapshot = False

    def on_message(self, topic, payload):
        """Returns a TrainJob when this round needs our contribution, else None.

        One message never stops the agent: every param it reads is checked first
        (``schema.INBOUND_PARAMS``), and an unexpected exception while handling a message is
        logged with the message's sha256 while the agent keeps the model and state it had."""
        before = self._state()
        try:
            return self._on_message(topic, payload)
        except Exception as exc:  # isolation: see the docstring; the traceback's last frame is logged
            self._set_state(before)
            self.log.append(("warn", "ignored a message on {} (sha256 {}): internal: {} at {} — "
                                     "keeping round {}".format(
                                         topic, payload_digest(payload), type(exc).__name__,
                                         fault_location(exc), self.model_round)))
            return None

    def _state(self):
        due = self.pending.due if self.pending is not None else None
        return [getattr(self, k) for k in _STATE] + [len(self.outbox), len(self.statuses), due]

    def _set_state(self, state):
        for k, v in zip(_STATE, state):
            setattr(self, k, v)
        del self.outbox[state[-3]:], self.statuses[state[-2]:]
        if self.pending is not None:
            self.pending.due = state[-1]

    def _on_message(self, topic, payload):
        if not payload:
            return None
        for kind, name in (("round", self.topics.round), ("snapshot", self.topics.snapshot),
                           ("status", self.topics.status(self.cfg.client_id))):
            if topic == name:
                self.received[kind] += len(payload)
        try:
            msg = decode_message(payload)
        except WireError as exc:
            self.log.append(("warn", "ignored a bad message on {}: {}".format(topic, exc)))
            return None
        if msg.federation != self.cfg.federation:
            return None
        bad = params_problem(msg.kind, msg.params)
        if topic == self.topics.status(self.cfg.client_id) and msg.kind == "status":
            if bad:
                self.log.append(("warn", "ignored a status for round {}: {}".format(msg.round, bad)))
            else:
                self._on_status(msg)
            return None
        if topic not in (self.topics.round, self.topics.snapshot) or msg.kind != "round":
            return None
        refusal = bad or self._refusal(msg)
        if refusal:
            self._refuse(msg.round, refusal)
            return None
        if not self._load(msg):
            return None
        self.model_round = msg.round
        if msg.params.get("final"):
            self.done = True
            self.current = msg
            return None
        if msg.round <= self.last_round:
            p = self.pending
            if p is not None and msg.round == p.round and msg.params.get("epoch") != p.epoch:
                p.due = True  # re-announced by a restarted aggregator: it may have lost it
            return None
        sampled = msg.params.get("sampled")
        if sampled is not None and self.cfg.client_id not in sampled:
            self.log.append(("info", "round {}: not sampled".format(msg.round)))
            return None
        self.current = msg
        model = OrderedDict((n, v.copy()) for n, v in self.model.items())
        return TrainJob(msg.round, model, dict(msg.params.get("train", {})))

    def _load(self, msg):
        """Make ``msg``'s model ours (full, or a delta applied); False when it gives none now."""
        is_delta = msg.params.get(DELTA_FIELD) is not None
        if is_delta and msg.round < self.model_round:
            return False  # an older delta (queued while away): our model is newer
        if self.model is not None and msg.base_digest == self.model_digest:
            self.want_snapshot = False
            return True  # we hold it already (a re-announcement, or the snapshot of our model)
        verdict, got = apply_announcement(self.model, self.model_digest, msg)
        problem = model_problem(self.model, got if is_delta else msg.tensors) \
            if verdict == "model" else None  # a full model as it came, before any conversion
        if problem:
            verdict, got = "refuse", problem
        if verdict == "model":
            self._hold(got, msg.base_digest)
            return True
        if verdict == "refuse":
            self._refuse(msg.round, got)
        elif not self.want_snapshot:
            self.log.append(("info", "round {}: {}; fetching the snapshot".format(msg.round, got)))
        self.want_snapshot = True
        return False

    def _refusal(self, msg):
        """Why a round announcement must not be loaded, or None."""
        if self.verifier is not None:
            problem = self.verifier.problem(msg)  # signature, then the tensors against their digest
        else:
            problem = tensors_problem(msg)
        if problem is None:
            problem = _codec_problem(msg.params)
        if problem is None and msg.round < self.model_round and DELTA_FIELD not in msg.params:
            problem = "round {} is older than round {}, already loaded (a replay?)".format(
                msg.round, self.model_round)
        return problem

    def _refuse(self, round_, reason):
        self.log.append(("warn", "round {}: refused the announcement: {} — keeping round {}".format(
            round_, reason, self.model_round)))
        status = Message(kind="status", federation=self.cfg.federation, round=round_,
                         client_id=self.cfg.client_id,
                         params={"accepted": False, "reason": "announcement: " + reason,
                                 "current_round": self.model_round})
        self.outbox.append((self.topics.agent_status(self.cfg.client_id), encode_message(status)))

    def _on_status(self, msg):
        accepted, reason = bool(msg.params.get("accepted")), str(msg.params.get("reason", ""))
        self.statuses.append((msg.round, accepted, reason))
        del self.statuses[:-MAX_STATUSES]  # the newest: a flood of statuses cannot grow memory
        if self.pending is not None and msg.round == self.pending.round:
            self.pending = None  # delivered: the aggregator has answered for this round
        if not accepted:
            level = "info" if reason.startswith("duplicate:") else "warn"  # a resend, counted
            self.log.append((level, "round {} update rejected: {}".format(msg.round, reason)))

    def resends(self, now):
        """``[(topic, payload)]`` to publish again: the pending update when its round was
        re-announced or ``resend_s`` passed since it was last sent; else ``[]``.

        A resend says so (``params["resend"]``): one station's regional aggregator may have
        folded the first copy while this one reaches another station, so a regional aggregator
        forwards a resend to the root unfolded (see ``edgefl.runtime.regional``)."""
        p = self.pending
        if p is None or not (p.due or now - p.sent_at >= self.cfg.resend_s):
            return []
        p.due, p.sent_at = False, now
        return [(p.topic, marked_resend(p.payload))]

    def on_trained(self, job, result, now=0.0):
        """Encode the update for ``job`` and return (topic, payload) to publish at QoS 1.

        The update stays pending (see :meth:`resends`) until a status for its round arrives;
        ``now`` is when the caller sends it."""
        msg = self.current
        if msg is None or msg.round != job.round:
            raise EdgeRuntimeError("on_trained for round {} but the current round is {}".format(
                job.round, None if msg is None else msg.round))
        delta = OrderedDict()
        for n, g in job.global_model.items():
            local = np.asarray(result.tensors[n], np.float32)
            if local.shape != g.shape:
                raise EdgeRuntimeError("trainer returned {} with shape {}, expected {}".format(
                    n, local.shape, g.shape))
            delta[n] = local - g
        codec = make_codec(msg.params.get("codec", "none"), **msg.params.get("codec_options", {}))
        rng = np.random.RandomState(_seed(self.cfg.seed, self.cfg.client_id, job.round))
        codec_state = dict(self.codec_state)  # kept only once the update is made
        tensors, cparams = codec.encode(delta, codec_state, rng)
        metrics = {k: float(v) for k, v in result.metrics.items()}
        examples = int(result.num_examples)
        if self.cfg.max_examples:  # more data than declared: claim the declared count
            examples = min(examples, int(self.cfg.max_examples))
        update = Message(kind="update", federation=self.cfg.federation, round=job.round,
                         client_id=self.cfg.client_id, base_digest=msg.base_digest,
                         num_examples=examples, encoding=codec.name,
                         metrics=metrics, params={"codec": cparams}, tensors=tensors)
        topic, payload = self.topics.update(self.cfg.client_id), encode_message(update)
        self.last_round, self.codec_state = job.round, codec_state
        self.pending = Pending(job.round, topic, payload, now, msg.params.get("epoch"))
        return topic, payload

    # --- persistence ------------------------------------------------------------------------
    def to_bytes(self):
        res = self.codec_state.get("residual", {})
        tensors = OrderedDict(("residual/" + n, v) for n, v in res.items())
        tensors.update(("model/" + n, v) for n, v in (self.model or {}).items())
        state = {"last_round": self.last_round, "model_round": self.model_round,
                 "model_digest": self.model_digest,
                 "extra": {k: v for k, v in self.codec_state.items() if k != "residual"}}
        if self.pending is not None:
            state["pending"] = {"round": self.pending.round, "topic": self.pending.topic,
                                "epoch": self.pending.epoch}
            tensors[_PENDING] = np.frombuffer(self.pending.payload, np.uint8)
        return encode_tensors(tensors, {"edgefl.agent_state": json.dumps(state)})

    def restore(self, blob):
        try:
            tensors, meta = decode_tensors(blob)
            state = json.loads(meta["edgefl.agent_state"])
        except (WireError, KeyError, ValueError) as exc:
            raise EdgeRuntimeError("agent state file is unreadable ({}) — delete it".format(exc))
        self.last_round = int(state["last_round"])
        self.model_round = max(int(state.get("model_round", 0)), self.last_round)
        self.codec_state = dict(state.get("extra", {}))
        residual = _prefixed(tensors, "residual/")
        if residual:
            self.codec_state["residual"] = residual
        model = _prefixed(tensors, "model/")
        if model and model_digest(model) == state.get("model_digest"):
            self._hold(model, state["model_digest"])
        pending = state.get("pending")
        if pending and _PENDING in tensors:  # sent before the restart, never answered: resend
            self.pending = Pending(int(pending["round"]), str(pending["topic"]),
                                   tensors[_PENDING].tobytes(), float("-inf"),
                                   pending.get("epoch"))


_PENDING = "pending/update"  # the unanswered update's bytes, in the agent state file
RESEND_FIELD = "resend"


def marked_resend(payload):
    """The update ``payload`` with ``params["resend"] = True`` (its tensors unchanged)."""
    msg = decode_message(payload)
    msg.params[RESEND_FIELD] = True
    return encode_message(msg)
_STATE = ("last_round", "model_round", "model", "model_digest", "want_snapshot", "current", "done",
          "pending")  # what handling one message may change (see AgentCore._state)
MAX_STATUSES = 1000


def _codec_problem(params):
    """Why the round's update codec cannot be built (checked before any training), or None."""
    try:
        make_codec(params.get("codec", "none"), **params.get("codec_options", {}))
    except (EdgeRuntimeError, ValueError, OverflowError) as exc:
        return "codec: {}".format(str(exc)[:200])
    return None


def _prefixed(tensors, prefix):
    return OrderedDict((k[len(prefix):], np.array(v)) for k, v in tensors.items()
                       if k.startswith(prefix))


def _seed(seed, client_id, round_):
    h = 2166136261
    for ch in "{}|{}|{}".format(seed, client_id, round_).encode("utf-8"):
        h = ((h ^ ch) * 16777619) % (2 ** 32)
    return h
