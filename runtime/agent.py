"""The agent as a pure state machine: round announcements in, training jobs and updates out.

The loop (``edgefl.runtime.loops.run_agent``) feeds it messages, runs the :class:`Trainer` it
asks for and publishes what it returns. The agent remembers the last round it contributed to
(persisted, with the codec's error-feedback residual) so a restart never double-submits.

With the aggregator's public key (``AgentConfig.announce_key``) it loads only announcements
signed with the aggregator's key (``edgefl.runtime.announce``), and never one older than the
newest it loaded (``model_round``, persisted): a refused announcement leaves the current one in
place and is reported in the log and on the agent's status topic (``outbox``).
"""

import json
from collections import OrderedDict, namedtuple
from dataclasses import dataclass

import numpy as np

from edgefl.runtime.announce import AnnouncementVerifier
from edgefl.runtime.codecs import make_codec
from edgefl.runtime.errors import EdgeRuntimeError, WireError
from edgefl.runtime.transport import Topics
from edgefl.runtime.wire import Message, decode_message, decode_tensors, encode_message, \
    encode_tensors, model_digest

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
        self.outbox = []  # (topic, payload) for the loop to publish at QoS 1
        self.codec_state = {}
        self.current = None  # the newest round Message not yet handled
        self.done = False
        self.statuses = []  # (round, accepted, reason)
        self.log = []

    def subscriptions(self):
        return [self.topics.round, self.topics.status(self.cfg.client_id)]

    def on_message(self, topic, payload):
        """Returns a TrainJob when this round needs our contribution, else None."""
        if not payload:
            return None
        try:
            msg = decode_message(payload)
        except WireError as exc:
            self.log.append(("warn", "ignored a bad message on {}: {}".format(topic, exc)))
            return None
        if msg.federation != self.cfg.federation:
            return None
        if topic == self.topics.status(self.cfg.client_id) and msg.kind == "status":
            self.statuses.append((msg.round, bool(msg.params.get("accepted")),
                                  str(msg.params.get("reason", ""))))
            if not msg.params.get("accepted"):
                self.log.append(("warn", "round {} update rejected: {}".format(
                    msg.round, msg.params.get("reason"))))
            return None
        if topic != self.topics.round or msg.kind != "round":
            return None
        refusal = self._refusal(msg)
        if refusal:
            self._refuse(msg.round, refusal)
            return None
        self.model_round = msg.round
        if msg.params.get("final"):
            self.done = True
            self.current = msg
            return None
        if msg.round <= self.last_round:
            return None
        sampled = msg.params.get("sampled")
        if sampled is not None and self.cfg.client_id not in sampled:
            self.log.append(("info", "round {}: not sampled".format(msg.round)))
            return None
        self.current = msg
        model = OrderedDict((n, np.array(v, np.float32)) for n, v in msg.tensors.items())
        return TrainJob(msg.round, model, dict(msg.params.get("train", {})))

    def _refusal(self, msg):
        """Why a round announcement must not be loaded, or None."""
        if self.verifier is not None:
            problem = self.verifier.problem(msg)  # signature, then the model against its digest
        elif model_digest(msg.tensors) != msg.base_digest:
            problem = "global model digest mismatch"
        else:
            problem = None
        if problem is None and msg.round < self.model_round:
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

    def on_trained(self, job, result):
        """Encode the update for ``job`` and return (topic, payload) to publish at QoS 1."""
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
        tensors, cparams = codec.encode(delta, self.codec_state, rng)
        metrics = {k: float(v) for k, v in result.metrics.items()}
        examples = int(result.num_examples)
        if self.cfg.max_examples:  # more data than declared: claim the declared count
            examples = min(examples, int(self.cfg.max_examples))
        update = Message(kind="update", federation=self.cfg.federation, round=job.round,
                         client_id=self.cfg.client_id, base_digest=msg.base_digest,
                         num_examples=examples, encoding=codec.name,
                         metrics=metrics, params={"codec": cparams}, tensors=tensors)
        self.last_round = job.round
        return self.topics.update(self.cfg.client_id), encode_message(update)

    # --- persistence ------------------------------------------------------------------------
    def to_bytes(self):
        res = self.codec_state.get("residual", {})
        meta = {"edgefl.agent_state": json.dumps({
            "last_round": self.last_round, "model_round": self.model_round,
            "extra": {k: v for k, v in self.codec_state.items() if k != "residual"}})}
        return encode_tensors(OrderedDict(("residual/" + n, v) for n, v in res.items()), meta)

    def restore(self, blob):
        try:
            tensors, meta = decode_tensors(blob)
            state = json.loads(meta["edgefl.agent_state"])
        except (WireError, KeyError, ValueError) as exc:
            raise EdgeRuntimeError("agent state file is unreadable ({}) — delete it".format(exc))
        self.last_round = int(state["last_round"])
        self.model_round = max(int(state.get("model_round", 0)), self.last_round)
        self.codec_state = dict(state.get("extra", {}))
        if tensors:
            self.codec_state["residual"] = OrderedDict(
                (k[len("residual/"):], np.array(v)) for k, v in tensors.items())


def _seed(seed, client_id, round_):
    h = 2166136261
    for ch in "{}|{}|{}".format(seed, client_id, round_).encode("utf-8"):
        h = ((h ^ ch) * 16777619) % (2 ** 32)
    return h
