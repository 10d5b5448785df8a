"""The aggregator as a pure round state machine: events in, actions out.

``start(now)``, ``on_message(topic, payload, now)`` and ``tick(now)`` return lists of
:class:`Publish` / :class:`Persist` actions; the serve loop (``edgefl.runtime.loops``) performs
them. Nothing here touches the network, the disk or the clock.

Sync mode: round r announces the global model (retained) and the clients sampled for it; it
closes when every sampled client (or ``clients_per_round`` clients) has been accepted, or at the
deadline once ``min_clients`` (the quorum) are in; below quorum it keeps waiting. Async mode
(FedBuff): every accepted update is buffered; K = ``buffer_size`` updates (or the deadline with
a quorum) produce a new version; updates based on one of the last ``max_staleness`` versions are
accepted and weighted by staleness.

Announcements (the announce path, separate from aggregation): with ``downlink_codec`` "none"
the round topic carries the full fp32 model. With a codec it carries the new model as a coded
delta against the previous version (``edgefl.runtime.downlink``): aggregated updates go into the
server's model ``server_model``; ``global_model`` is the reference every client reconstructs,
advanced by exactly what the delta carries, and the digest announced and expected in updates is
its digest. A full snapshot of ``global_model`` is retained on the snapshot topic (published
before the delta) for clients that missed a version or join late.

Aggregation streams (``edgefl.runtime.fold``): for FedAvg and FedBuff each accepted update is
folded into an exact fixed-point running sum as it arrives and is not kept, so memory does not
grow with the number of clients, and the same updates in any order give bitwise the same model.
Strategies that need every update at once (median, trimmed mean) keep them (``buffered``).

State is persisted (a Persist action) after every accepted update and every round change, so a
restart resumes the same round with the same contributions: the running sum and the set of
contributors, not the updates.
"""

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from edgefl.runtime import strategies
from edgefl.runtime.actions import Persist, Publish
from edgefl.runtime.errors import EdgeRuntimeError, WireError, fault_location
from edgefl.runtime.codecs import CODECS, make_codec
from edgefl.runtime.downlink import DELTA_FIELD, DownlinkCoder, delta_fields
from edgefl.runtime.fold import Fold, grid_for
from edgefl.runtime.hierarchy import HIERARCHY_PROBLEMS, RootHierarchy
from edgefl.runtime.partial import fold_params
from edgefl.runtime.schema import lean_params, update_metrics
from edgefl.runtime.transport import Topics, share_group_problem
from edgefl.runtime.validate import Expectation, validate_update
from edgefl.runtime.wire import Message, decode_message, encode_message, \
    model_digest, payload_digest



@dataclass
class AggregatorConfig:
    """Options of a federation's aggregator (JSON-friendly).

    Attributes:
        federation: federation name (topics edgefl/NAME/...).
        mode: sync (rounds) or async (FedBuff versions).
        strategy: how accepted updates are combined (sync mode).
        strategy_options: keyword options of the strategy, e.g. trim=0.1.
        codec: update codec the agents must use.
        codec_options: keyword options of the codec, e.g. rate=0.01.
        downlink_codec: announce each new model as a delta coded by this codec, with a full snapshot
            retained for clients that missed a version; none = full fp32 models.
        downlink_options: keyword options of the downlink codec, e.g. rate=0.05.
        train: local training options sent to agents, e.g. epochs=1, lr=0.05.
        rounds: rounds (sync) or model versions (async); 0 = forever.
        min_clients: quorum: a round closes at the deadline only with this many.
        clients_per_round: sample this many clients per round (0 = all / open).
        clients: known client ids (for sampling).
        deadline_s: seconds a round stays open before closing with the quorum.
        server_lr: server learning rate applied to the aggregated update.
        buffer_size: async: updates per new model version (K).
        max_staleness: async: oldest accepted base version.
        staleness_weight: async: weight of a stale update.
        clip_norm: clip each update to this L2 norm before aggregating.
        max_norm: reject updates with a larger L2 norm.
        max_update_bytes: reject update messages larger than this.
        max_examples: ceiling on any update's example count (its FedAvg weight).
        client_max_examples: a client's declared example count (its weight is capped there), e.g.
            client-000=6000.
        seed: client-sampling seed.
        stations: ground stations whose regional aggregators send partial sums (hierarchical
            FedAvg, sync rounds), e.g. gs-a,gs-b.
        share_group: take updates through the shared subscription $share/GROUP/.../update/+, as
            one of several workers splitting the stream on a clustered broker (the others are
            regional aggregators listed in stations; see README "Clustered brokers"), e.g. aggs.
    """

    federation: str
    mode: str = "sync"  # "sync" | "async"
    strategy: str = "fedavg"
    strategy_options: dict = field(default_factory=dict)
    codec: str = "none"
    codec_options: dict = field(default_factory=dict)
    downlink_codec: str = "none"  # "none": full models; else announcements are coded deltas
    downlink_options: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)  # sent to agents: epochs, lr, batch_size, prox_mu
    rounds: int = 10
    min_clients: int = 1
    clients_per_round: int = 0
    clients: List[str] = field(default_factory=list)
    deadline_s: float = 300.0
    server_lr: float = 1.0
    buffer_size: int = 4
    max_staleness: int = 3
    staleness_weight: str = strategies.DEFAULT_STALENESS
    clip_norm: Optional[float] = None
    max_norm: Optional[float] = None
    max_update_bytes: int = 256 * 1024 * 1024
    max_examples: int = 10 ** 9  # ceiling on any update's example count (its FedAvg weight)
    client_max_examples: dict = field(default_factory=dict)  # client -> its declared count
    seed: int = 0
    stations: List[str] = field(default_factory=list)  # hierarchical: regional aggregators
    share_group: str = ""  # take updates through $share/GROUP/... (workers split the stream)

    def check(self):
        """Raise EdgeRuntimeError on an unusable option; returns self."""
        problems = [
            (self.mode not in ("sync", "async"), "mode must be 'sync' or 'async'"),
            (self.strategy not in strategies.STRATEGIES, "strategy must be one of {}".format(
                sorted(strategies.STRATEGIES))),
            (self.codec not in CODECS, "codec must be one of {}".format(sorted(CODECS))),
            (self.downlink_codec not in CODECS, "downlink_codec must be one of {}".format(
                sorted(CODECS))),
            (not isinstance(self.downlink_options, dict), "downlink_options must be an object"),
            (self.staleness_weight not in strategies.STALENESS,
             "staleness_weight must be one of {}".format(sorted(strategies.STALENESS))),
            (self.min_clients < 1, "min_clients must be >= 1"),
            (self.buffer_size < 1, "buffer_size must be >= 1"),
            (self.clients_per_round > len(self.clients) > 0,
             "clients_per_round is larger than the clients list"),
            (not _positive_int(self.max_examples), "max_examples must be a positive integer"),
            (not isinstance(self.client_max_examples, dict)
             or not all(_positive_int(v) for v in self.client_max_examples.values()),
             "client_max_examples must map client ids to positive integers"),
            (share_group_problem(self.share_group) is not None, share_group_problem(self.share_group)),
        ] + HIERARCHY_PROBLEMS(self)
        for bad, why in problems:
            if bad:
                raise EdgeRuntimeError("aggregator config: {} — fix the config".format(why))
        try:
            make_codec(self.downlink_codec, **self.downlink_options)
        except EdgeRuntimeError as exc:
            raise EdgeRuntimeError("aggregator config: downlink: {}".format(exc))
        return self


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def sample_clients(clients, k, seed, round_):
    """Deterministic sample of k clients for a round (sorted), or None for 'anyone'."""
    if not clients or k <= 0 or k >= len(clients):
        return sorted(clients) if clients else None
    rng = np.random.RandomState((seed * 1000003 + round_) % (2 ** 32))
    return sorted(rng.choice(sorted(clients), size=k, replace=False).tolist())


class AggregatorCore(RootHierarchy):
    """Round state machine (see module docstring)."""

    config_type = AggregatorConfig

    def __init__(self, config, global_model):
        self.cfg = config.check()
        self.topics = Topics(config.federation)
        self.global_model = OrderedDict((n, np.array(v, np.float32))
                                        for n, v in sorted(global_model.items()))
        self.downlink = DownlinkCoder(config.downlink_codec, config.downlink_options, config.seed)
        # where aggregated updates go; the announced model (global_model) follows it
        self.server_model = self.global_model if self.downlink.full else \
            OrderedDict((n, v.copy()) for n, v in self.global_model.items())
        self.delta = None  # (coded tensors, params["delta"]) of the current announcement
        self.announce_bytes = 0  # size of the current announcement (what each client fetches)
        self.snapshot_bytes = 0  # size of the retained full snapshot (0: full announcements)
        self.round = 0  # 0: not started
        self.digest = model_digest(self.global_model)
        self.versions = OrderedDict()  # digest -> version
        self.accepted = OrderedDict()  # (client, version) -> (num_examples, metrics)
        self.fold = None  # fold.Fold: the running sum of this round's (buffer's) updates
        self.buffered = OrderedDict()  # (client, version) -> tensors: median/trimmed mean's
        # updates, or (hierarchical) resends kept until the close
        self.merged = set()  # (station, round, seq) of the partials merged (hierarchical)
        self.sampled = None
        self.deadline = 0.0
        self.done = False
        self.history = []
        self.rejected = 0
        self.bytes_in = 0
        self.keyring = None  # signing.Keyring: set it to require HMAC-signed updates
        self.announce_signer = None  # announce.AnnouncementSigner: set it to sign announcements
        self.log = []  # (level, text) lines for the loop to print
        self.rejections = {}  # reason code -> count, over the aggregator's life
        self.quarantined = set()  # sha256 of messages never to process (runtime.quarantine)
        # (client, version) of every update counted for a version still accepted: a resend of
        # one already folded into an earlier async buffer is a duplicate, not counted twice
        self.contributed = set()
        self.epoch = 0  # starts of this aggregator (persisted): see start()

    # --- state machine ----------------------------------------------------------------------
    def start(self, now):
        """Open round 1, or re-announce the restored round.

        Each start is a new ``epoch`` (announced with the round): an agent whose update for
        this round got no status resends it when it sees the round under a newer epoch, and
        not when the broker merely delivers the same retained announcement twice."""
        self.epoch += 1
        if self.round == 0:
            return self._open_round(1, now)
        return self._announcements(final=self.done) + [self._persist()]

    def on_message(self, topic, payload, now, digest=None, retain=False):
        """Validate one update and fold it in; returns the actions (status, persist, ...).

        One message never stops the aggregator: an unexpected exception while handling it is
        logged with the message's digest (``digest`` when the loop computed it already) and
        becomes a rejection with reason ``internal``; the state is left as it was before.
        A retained message on an update topic is ignored and cleared (a client's update is
        never retained; a retained one would come back on every restart). A message whose
        digest is in ``quarantined`` is rejected without being processed.
        """
        if self.done:
            return []
        kind, sender, handler = self._route(topic)
        if handler is None or not payload:
            return []
        if retain:
            self.log.append(("warn", "round {}: ignored a retained message on {} ({} bytes) and "
                                     "cleared it".format(self.round, topic, len(payload))))
            return [Publish(topic, b"", 1, True)]
        if self.quarantined:
            digest = digest or payload_digest(payload)
            if digest in self.quarantined:
                return self._refuse_from(kind, sender, topic, payload, "quarantined: it was being "
                                         "processed when the aggregator stopped", "warn", digest)
        before = (len(self.accepted), len(self.buffered), self.bytes_in)
        try:
            return handler(sender, topic, payload, now)
        except Exception as exc:  # isolation: see the docstring; the traceback's last frame is logged
            while len(self.accepted) > before[0]:
                self.accepted.popitem()
            while len(self.buffered) > before[1]:
                self.buffered.popitem()
            self.bytes_in = before[2]
            return self._refuse_from(kind, sender, topic, payload, "internal: {} at {}".format(
                type(exc).__name__, fault_location(exc)), "error", digest or payload_digest(payload))

    def _route(self, topic):
        """(kind, sender, handler) of a topic the aggregator takes messages on, else Nones."""
        client = self.topics.client_from_update_topic(topic)
        if client is not None:
            return "update", client, self._on_direct if self.cfg.stations else self._on_update
        for kind, handler in (self._routes().items() if self.cfg.stations else ()):
            station = self.topics.station_from_topic(topic, kind)
            if station is not None:
                return kind, station, handler
        return None, None, None

    def _refuse_from(self, kind, sender, topic, payload, reason, level, digest):
        """Refuse a message before its handler ran: to its client, or to its station."""
        if kind == "partial":
            return self._refuse_partial(sender, topic, payload, _round_of(payload), -1, reason, {})
        if kind == "forward":  # whose update it is, the handler would have read
            self.log.append((level, "round {}: rejected forward on {} ({} bytes, sha256 {}): {}"
                                    .format(self.round, topic, len(payload), digest, reason)))
            return []
        return self._refuse(sender, topic, payload, reason, level, digest, _round_of(payload))

    def _on_update(self, client, topic, payload, now):
        fold = self._fold_in if self.fold is not None else None
        verdict = validate_update(payload, self._expectation(), topic_client=client, fold=fold)
        if not verdict.ok:
            return self._refuse(client, topic, payload, verdict.reason, "warn", None,
                                verdict.round)
        key = (client, self.round - verdict.staleness)
        self.accepted[key] = (verdict.num_examples, verdict.metrics)
        if fold is None:
            self.buffered[key] = verdict.tensors
        self.bytes_in += len(payload)
        actions = [self._status(client, verdict.round, True, "")]
        try:
            actions += self._close_round(now) if self._ready(now) else [self._persist()]
        except Exception:
            verdict.undo()  # exact: the fold is as it was before this update
            raise
        self.contributed.add(key)  # after: nothing to undo when closing the round raised
        return actions

    def _fold_in(self, tensors, num_examples, staleness, norm):
        """Fold one update (see ``validate_update``): its strategy's coefficient and weight,
        the coefficient scaled down by clipping. Returns (reason or None, undo)."""
        c = self.cfg
        coef, weight = strategies.fold_weight(self._strategy(), num_examples, staleness,
                                              c.staleness_weight)
        if c.clip_norm:
            norm = strategies.update_norm(tensors) if norm is None else norm
            if norm > c.clip_norm:
                coef *= c.clip_norm / norm
        fold = self.fold
        return fold.add(tensors, coef, weight), lambda: fold.subtract(tensors, coef, weight)

    def _strategy(self):
        return "fedbuff" if self.cfg.mode == "async" else self.cfg.strategy

    def _refuse(self, client, topic, payload, reason, level, digest, round_=-1):
        """Count, log and answer a rejected update."""
        self.rejected += 1
        code = reason.split(":", 1)[0]
        self.rejections[code] = self.rejections.get(code, 0) + 1
        self.log.append((level, "round {}: rejected update on {} ({} bytes{}): {}".format(
            self.round, topic, len(payload), ", sha256 " + digest if digest else "", reason)))
        return [self._status(client, round_, False, reason)]

    def tick(self, now):
        if self.done or self.round == 0 or now < self.deadline:
            return []
        if len(self.accepted) >= self.cfg.min_clients:
            return self._close_round(now)
        return []

    # --- helpers ----------------------------------------------------------------------------
    def _expectation(self):
        c = self.cfg
        return Expectation(
            federation=c.federation, round=self.round, versions=dict(self.versions),
            shapes=OrderedDict((n, v.shape) for n, v in self.global_model.items()),
            codec=c.codec, codec_options={},
            accepted=frozenset(self.accepted).union(self.contributed),
            sampled=frozenset(self.sampled) if self.sampled is not None and c.mode == "sync"
            else None, max_bytes=c.max_update_bytes, max_norm=c.max_norm,
            max_examples=c.max_examples, client_max_examples=c.client_max_examples,
            async_mode=c.mode == "async", keyring=self.keyring)

    def _ready(self, now):
        n = len(self.accepted)
        if self.cfg.mode == "async":
            return n >= self.cfg.buffer_size
        if self.sampled is not None and len(self.sampled) > 0:
            return n >= len(self.sampled)
        return n >= max(self.cfg.clients_per_round, self.cfg.min_clients)

    def _open_round(self, round_, now):
        self.round = round_
        self._advance_reference(round_)
        self.versions[self.digest] = round_
        keep = self.cfg.max_staleness + 1 if self.cfg.mode == "async" else 1
        while len(self.versions) > keep:
            self.versions.popitem(last=False)
        live = set(self.versions.values())
        self.contributed = set(k for k in self.contributed if k[1] in live)
        self.sampled = sample_clients(self.cfg.clients, self.cfg.clients_per_round,
                                      self.cfg.seed, round_)
        self.deadline = now + self.cfg.deadline_s
        self.accepted = OrderedDict()
        self.buffered = OrderedDict()
        self.merged = set(m for m in self.merged if m[1] >= round_ - 2)
        self.fold = self._new_fold()
        self.bytes_in = 0
        self.rejected = 0
        return self._announcements() + [self._persist()]

    def _new_fold(self):
        """The running sum of the round just opened, or None for a strategy that needs every
        update at once. Its grid is sized by the most weight one round can gather."""
        if self._strategy() not in strategies.FOLD_WEIGHTS:
            return None
        shapes = OrderedDict((n, v.shape) for n, v in self.server_model.items())
        return Fold(shapes, grid_for(self.server_model, self._weight_bound()))

    def _weight_bound(self):
        """The most the FedAvg weights (example counts) or FedBuff weights of one round add up to."""
        c = self.cfg
        if c.mode == "async":
            return c.buffer_size
        caps = sorted((c.client_max_examples.get(cid, c.max_examples)
                       for cid in (self.sampled or c.clients)), reverse=True)
        most = len(self.sampled) if self.sampled else max(c.clients_per_round, c.min_clients)
        if caps:
            return sum(caps[:most])
        return most * c.max_examples

    def _close_round(self, now):
        """Aggregate, then commit: nothing changes when aggregation or the summary raises. The
        commit is arithmetic only: the new model is written over the server model's own arrays
        block by block while the running sum is given back (no second model in memory)."""
        c = self.cfg
        undos = self._fold_kept() if c.stations else []
        try:
            if self.fold is not None:  # block by block from the running sum, given back as read
                fold = self.fold
                delta = lambda name: fold.mean_blocks(name, release=True)  # noqa: E731
                if not fold.weight:
                    raise ValueError("the round's fold holds no weight")
            else:
                delta = _blocks_of(self._robust_delta())
            summary = self._round_summary()
        except Exception:
            for undo in undos:
                undo()
            raise
        # the commit: arithmetic only, into the server model's own arrays (no second model)
        self.server_model = OrderedDict((n, _applied(v, delta(n), c.server_lr))
                                        for n, v in self.server_model.items())
        self.history.append(summary)
        if self.fold is not None:  # its sums are in the model now: freed before the announcement
            self.fold.reset()
        if c.rounds and self.round >= c.rounds:
            self.done = True
            self.round += 1
            self._advance_reference(self.round)
            self.accepted, self.buffered, self.fold = OrderedDict(), OrderedDict(), None
            return self._announcements(final=True) + [self._persist()]
        return self._open_round(self.round + 1, now)

    def _robust_delta(self):
        """The aggregated delta of a strategy that sees every update (median, trimmed mean)."""
        c = self.cfg
        updates = [strategies.ClientUpdate(cid, self.accepted[(cid, v)][0], t, self.round - v)
                   for (cid, v), t in self.buffered.items()]
        return strategies.aggregate(c.strategy, updates, clip_norm=c.clip_norm,
                                    **c.strategy_options)

    def _advance_reference(self, round_):
        """The announce path: the model every client holds for ``round_``, and its delta."""
        if self.downlink.full:
            self.global_model, self.delta = self.server_model, None
        else:
            tensors, params, reference = self.downlink.step(self.global_model, self.server_model,
                                                            round_)
            self.delta = (tensors, delta_fields(round_ - 1, self.digest, self.downlink.options,
                                                params, tensors))
            self.global_model = reference
        self.digest = model_digest(self.global_model)

    def _round_summary(self):
        """Example-weighted client metrics, summed in client order (the same for any arrival
        order); only finite numbers count (older state files may hold anything a client sent)."""
        entries = sorted(self.accepted.items())
        total = float(sum(n for _, (n, _) in entries)) or 1.0
        metrics = [(n, _numbers(m)) for _, (n, m) in entries]
        keys = sorted(set(k for _, m in metrics for k in m))
        client_metrics = {k: sum(m.get(k, 0.0) * n for n, m in metrics) / total for k in keys}
        summary = {"round": self.round, "base_digest": self.digest,
                   "clients": sorted(cid for (cid, _), _ in entries),
                   "num_examples": int(total), "bytes_in": self.bytes_in,
                   "announcement_bytes": self.announce_bytes,
                   "snapshot_bytes": self.snapshot_bytes, "rejected": self.rejected,
                   "client_metrics": client_metrics}
        if self.fold is not None:
            summary["fold_error_bound"] = self.fold.error_bound()
        return summary

    def _announcements(self, final=False):
        """The retained snapshot (delta announcements only) first, then the announcement."""
        snapshot = [] if self.delta is None else [self._snapshot(final)]
        return snapshot + [self._announce(final)]

    def _round_message(self, final, encoding, tensors, extra=None):
        """An announcement carries what clients need to train, nothing more: params at their
        readers' default are left out (``schema.lean_params``), ``sampled`` too when a sync
        round takes every enrolled client (``_expectation`` still refuses anyone else), and the
        previous round's summary goes to operators on the status topic (``round_log``)."""
        c = self.cfg
        everyone = c.mode == "sync" and self.sampled is not None and self.sampled == sorted(c.clients)
        params = {"mode": c.mode, "codec": c.codec, "codec_options": c.codec_options,
                  "sampled": None if everyone else self.sampled, "deadline": self.deadline,
                  "train": c.train, "final": final, "epoch": self.epoch}
        if c.stations and self.fold is not None:  # what regional aggregators fold with
            params["fold"] = fold_params(self.fold, c.clip_norm, c.max_norm)
        params.update(extra or {})
        msg = Message(kind="round", federation=c.federation, round=self.round,
                      base_digest=self.digest, encoding=encoding,
                      params=dict(lean_params("round", params)), tensors=tensors)
        if self.announce_signer is not None:
            self.announce_signer.sign(msg)
        return encode_message(msg)

    def _announce(self, final=False):
        """The round topic's retained announcement: the full model, or the coded delta."""
        if self.delta is None:
            payload = self._round_message(final, "none", self.global_model)
        else:
            tensors, fields = self.delta
            payload = self._round_message(final, self.downlink.codec, tensors,
                                          {DELTA_FIELD: fields})
        self.announce_bytes = len(payload)
        return Publish(self.topics.round, payload, 1, True)

    def _snapshot(self, final=False):
        """The snapshot topic's retained full model, for clients whose model a delta misses."""
        payload = self._round_message(final, "none", self.global_model)
        self.snapshot_bytes = len(payload)
        return Publish(self.topics.snapshot, payload, 1, True)

    def _status(self, client, round_, ok, reason):
        """The verdict on one update; no tensors (encoding ""), no default params (see
        ``schema.PARAM_DEFAULTS``: ``current_round`` only when it is not the status's round)."""
        round_ = max(round_, 0)
        params = {"accepted": ok, "reason": reason}
        if self.round != round_:
            params["current_round"] = self.round
        msg = Message(kind="status", federation=self.cfg.federation, round=round_,
                      client_id=client, encoding="", params=dict(lean_params("status", params)))
        return Publish(self.topics.status(client), encode_message(msg), 1, False)

    # --- persistence ------------------------------------------------------------------------
    def _persist(self):
        return Persist()

    def to_bytes(self, external=None, models=None):
        """The state as one safetensors blob (see ``edgefl.runtime.aggregator_state``)."""
        from edgefl.runtime.aggregator_state import state_bytes

        return state_bytes(self, external, models)

    def to_chunks(self, external=None, models=None):
        """``to_bytes`` as chunks to write one after the other (no state-sized copy)."""
        from edgefl.runtime.aggregator_state import state_chunks

        return state_chunks(self, external, models)

    @classmethod
    def from_bytes(cls, blob, config=None):
        """Restore a persisted state (``config`` overrides the stored one when given)."""
        from edgefl.runtime.aggregator_state import restore_core

        return restore_core(cls, blob, config)


def _round_of(payload):
    """The round an update names, for its status (so its agent stops resending); -1 if none."""
    try:
        return decode_message(payload).round
    except Exception:  # the message is what failed: its status goes out for round 0
        return -1


def _applied(model, blocks, lr):
    """float32(model + lr * delta) from the delta's (start, end, values) ``blocks``, computed
    in float64 block by block (no model-sized temporaries), written over ``model`` itself when
    it is a writable contiguous float32 array (the server model the aggregator owns), else
    into a new one (a model restored read-only from bytes)."""
    flat = np.asarray(model).reshape(-1)
    own = (isinstance(model, np.ndarray) and model.dtype == np.float32
           and model.flags["C_CONTIGUOUS"] and model.flags["WRITEABLE"])
    out = flat if own else np.empty(flat.size, np.float32)
    for s, e, d in blocks:
        out[s:e] = flat[s:e].astype(np.float64) + lr * d.astype(np.float64)
    return out.reshape(np.shape(model))


def _blocks_of(arrays, block=1 << 16):
    """name -> the (start, end, values) blocks of ``arrays[name]`` (see ``_applied``)."""
    def blocks(name):
        d = np.asarray(arrays[name]).reshape(-1)
        return ((s, min(d.size, s + block), d[s:s + block]) for s in range(0, d.size, block))
    return blocks


def _numbers(metrics):
    """The finite-number entries of a metrics dict (see ``schema.update_metrics``)."""
    try:
        return update_metrics(metrics)
    except WireError:
        items = metrics.items() if isinstance(metrics, dict) else ()
        return OrderedDict((k, float(v)) for k, v in items
                           if type(v) in (int, float) and abs(v) <= 2 ** 53 and np.isfinite(v))
