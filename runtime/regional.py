"""A station's regional aggregator as a pure state machine (hierarchical FedAvg).

It runs beside a ground station's broker. It reads the root's round announcement (bridged down
from the central broker, retained) — the round, the model digest, the sample, the codec and,
in ``params["fold"]``, the fixed-point grid and shapes every aggregator of the federation folds
with — and validates the updates of the clients in contact with its station exactly as the root
would (``validate_update``), folding each accepted one into its running sum. It never holds
the model: the grid and the shapes are all it needs.

Every ``partial_updates`` updates, or ``partial_interval_s`` after the first one not yet sent,
it sends the root a partial (``edgefl.runtime.partial``: the exact sums, their weight, the
contributors), signed with the station's HMAC key, and starts a new sum. One partial is in
flight at a time: the next waits for the root's answer on ``partial-status/{station}`` (it
keeps folding meanwhile), and an unanswered one is sent again every ``resend_s`` — through a
bridge whose uplink is down it queues at the station's broker. The root tells each contributor
it was accepted once the partial is merged; the regional aggregator answers only rejections
(locally, at once).

A client's resend (``params["resend"]``) is not folded: the first copy may already be in
another station's partial. If this station folded the first copy the resend is dropped;
otherwise it goes to the root unfolded (``forward/{station}``), which folds it at the close
unless a partial holds it (``edgefl.runtime.hierarchy``). First copies reach exactly one
station, so partials never overlap.

When a new round is announced, updates folded for the old one and not yet sent are rejected
locally (``stale-round``): the root closed that round without them.
An update for the next round that overtakes its announcement on the way to the station is held
(``max_early_bytes``, in memory: unanswered, its client resends if the station restarts) and
handled when the announcement comes.
"""

import json
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from edgefl.runtime.actions import Persist, Publish
from edgefl.runtime.announce import AnnouncementVerifier
from edgefl.runtime.errors import EdgeRuntimeError, WireError
from edgefl.runtime.fold import Fold
from edgefl.runtime.partial import partial_message, read_fold_params
from edgefl.runtime.schema import params_problem
from edgefl.runtime import strategies
from edgefl.runtime.transport import Topics, shared
from edgefl.runtime.validate import Expectation, validate_update
from edgefl.runtime.wire import Message, decode_message, decode_tensors, encode_message, \
    encode_tensors

__all__ = ["RegionalConfig", "RegionalCore"]


@dataclass
class RegionalConfig:
    """Options of a station's regional aggregator (JSON-friendly).

    Attributes:
        federation: federation name.
        station: this station's id (its partials' sender; the root lists it in ``stations``).
        max_update_bytes: reject update messages larger than this.
        max_examples: ceiling on any update's example count.
        client_max_examples: each client's declared example count (as the root's).
        partial_updates: send a partial after this many updates...
        partial_interval_s: ... or this long after the first update not yet sent.
        resend_s: send an unanswered partial again after this long.
        announce_key: the root's Ed25519 public key (hex); "" accepts unsigned announcements.
        max_early_bytes: updates for a round this station has not been announced yet (they
            overtook the announcement on its way here) are held, up to this many bytes, and
            handled when it comes; beyond, they are refused as before (the client resends).
        share_group: take client updates through the shared subscription
            ``$share/GROUP/.../update/+`` (several workers on one clustered broker split the
            stream; see README "Clustered brokers"); "" subscribes plainly.
    """

    federation: str
    station: str
    max_update_bytes: int = 256 * 1024 * 1024
    max_examples: int = 10 ** 9
    client_max_examples: dict = field(default_factory=dict)
    partial_updates: int = 64
    partial_interval_s: float = 2.0
    resend_s: float = 30.0
    announce_key: str = ""
    share_group: str = ""
    max_early_bytes: int = 64 * 1024 * 1024


class _Round(object):
    """What the root's announcement of one round says."""

    __slots__ = ("round", "digest", "sampled", "codec", "grid", "shapes", "clip_norm",
                 "max_norm", "final")

    def __init__(self, msg, fold):
        self.round, self.digest = msg.round, msg.base_digest
        self.sampled, self.codec = msg.params.get("sampled"), msg.params.get("codec", "none")
        self.grid, self.shapes, self.clip_norm, self.max_norm = fold
        self.final = bool(msg.params.get("final"))

    def to_json(self):
        return {"round": self.round, "digest": self.digest, "sampled": self.sampled,
                "codec": self.codec, "final": self.final,
                "fold": None if self.final else {"grid": [[n, g[0], g[1]] for n, g in self.grid.items()],
                         "shapes": [[n, list(s)] for n, s in self.shapes.items()],
                         "clip_norm": self.clip_norm, "max_norm": self.max_norm}}


class RegionalCore(object):
    """See the module docstring. ``keyring``: the clients' HMAC keys (every update must be
    signed when set); ``station_key``: this station's HMAC key (bytes) to sign partials."""

    def __init__(self, config, keyring=None, station_key=None):
        self.cfg = config
        self.topics = Topics(config.federation)
        self.keyring, self.station_key = keyring, station_key
        self.verifier = AnnouncementVerifier(config.announce_key) if config.announce_key else None
        self.current = None  # _Round
        self.fold = None  # the sums not yet sent
        self.pending = OrderedDict()  # (client, version) -> (examples, metrics) in ``fold``
        self.first_pending_at = None
        self.folded = set()  # (client, version) folded here this round, sent or not
        self.seq = 0
        self.outstanding = None  # [round, seq, payload, sent_at]: the partial in flight
        self.sent = []  # (round, seq, contributors) of every partial sent, for reports
        self.rejected = 0
        self.early = OrderedDict()  # (client, round) -> (topic, payload): ahead of ``current``
        self.log = []

    @property
    def done(self):
        """The root announced that the federation is over (it answers nothing after that)."""
        return self.current is not None and self.current.final

    def subscriptions(self):
        return [self.topics.round, shared(self.topics.updates, self.cfg.share_group),
                self.topics.partial_status(self.cfg.station)]

    # --- events ------------------------------------------------------------------------------
    def on_message(self, topic, payload, now):
        """Actions for one message (announcement, partial status or client update)."""
        if not payload:
            return []
        if topic == self.topics.round:
            return self._on_announcement(payload, now)
        if topic == self.topics.partial_status(self.cfg.station):
            return self._on_partial_status(payload, now)
        client = self.topics.client_from_update_topic(topic)
        if client is not None:
            return self._on_update(client, topic, payload, now)
        return []

    def tick(self, now):
        """Send the pending sums when they are due, or the unanswered partial again."""
        out = self.outstanding
        if out is not None and now - out[3] >= self.cfg.resend_s:
            out[3] = now
            self.log.append(("info", "round {}: partial {} unanswered; sent again".format(
                out[0], out[1])))
            return [Publish(self.topics.partial(self.cfg.station), out[2], 1, False)]
        if self.pending and now - self.first_pending_at >= self.cfg.partial_interval_s:
            return self._send(now)
        return []

    def _on_announcement(self, payload, now):
        try:
            msg = decode_message(payload)
        except WireError as exc:
            self.log.append(("warn", "ignored a bad announcement: {}".format(exc)))
            return []
        if msg.federation != self.cfg.federation or msg.kind != "round":
            return []
        cur = self.current
        if cur is not None and (msg.round, msg.base_digest) == (cur.round, cur.digest):
            return []  # the retained announcement again
        problem = params_problem("round", msg.params)
        if problem is None and self.verifier is not None:
            problem = self.verifier.problem(msg)
        if problem is None and cur is not None and msg.round < cur.round:
            problem = "round {} is older than round {}".format(msg.round, cur.round)
        if problem is None and msg.params.get("mode", "sync") != "sync":
            problem = "the root runs {} rounds; stations fold sync rounds".format(
                msg.params.get("mode"))
        try:  # the last announcement says only that the federation is over
            final = bool(msg.params.get("final"))
            fold = None if problem or final else read_fold_params(msg.params.get("fold"))
        except WireError as exc:
            problem = "{} (is the root configured with this station?)".format(exc.detail)
        if problem:
            self.log.append(("warn", "round {}: refused the announcement: {}".format(
                msg.round, problem)))
            return []
        actions = self._drop_unsent("stale-round: round {} closed before station {} sent "
                                    "it".format(cur.round, self.cfg.station)) if cur else []
        self.current = _Round(msg, fold or (OrderedDict(), OrderedDict(), None, None))
        self.folded = set()
        self.fold = None if final else Fold(self.current.shapes, self.current.grid)
        return actions + self._replay_early(msg.round, now) + [Persist()]

    def _replay_early(self, round_, now):
        """Handle the held updates of ``round_`` and older (those are refused as stale)."""
        actions = []
        for key in [k for k in self.early if k[1] <= round_]:
            topic, payload = self.early.pop(key)
            actions += self._on_update(key[0], topic, payload, now)
        return actions

    def _hold_early(self, client, head, topic, payload):
        """Keep an update for a round after ``current`` (see ``max_early_bytes``); False when
        it does not fit."""
        held = sum(len(p) for _, p in self.early.values())
        if held + len(payload) > self.cfg.max_early_bytes:
            return False
        self.early[(client, head.round)] = (topic, payload)
        return True

    def _drop_unsent(self, reason):
        actions = [self._status(cid, v, False, reason) for (cid, v) in self.pending]
        self.rejected += len(self.pending)
        self.pending, self.first_pending_at = OrderedDict(), None
        return actions

    def _on_partial_status(self, payload, now):
        try:
            msg = decode_message(payload)
        except WireError:
            return []
        out, p = self.outstanding, msg.params
        if out is None or msg.kind != "status" or (msg.round, p.get("seq")) != (out[0], out[1]):
            return []
        if not p.get("accepted"):
            self.log.append(("warn", "round {}: the root refused partial {}: {}".format(
                out[0], out[1], str(p.get("reason", ""))[:300])))
        self.outstanding = None
        due = self.pending and now - self.first_pending_at >= self.cfg.partial_interval_s
        full = len(self.pending) >= self.cfg.partial_updates
        return self._send(now) if due or full else [Persist()]

    def _on_update(self, client, topic, payload, now):
        cur = self.current
        if cur is not None and cur.final:
            return []  # the federation is over
        try:
            head = decode_message(payload)
        except WireError:
            head = None  # validation says what is wrong with it
        ahead = head is not None and head.client_id == client and \
            (cur is None or head.round == cur.round + 1)  # only the next round can overtake
        if ahead and self._hold_early(client, head, topic, payload):
            return []  # it overtook its round's announcement: handled when that comes
        if cur is None:
            return []  # nothing to fold for yet: the client resends
        if head is not None and head.params.get("resend") is True:
            if (client, head.round) in self.folded:
                return []  # its first copy is in this station's sums
            return [Publish(self.topics.forward(self.cfg.station), payload, 1, False)]
        verdict = validate_update(payload, self._expectation(), topic_client=client,
                                  fold=self._fold_in)
        if not verdict.ok:
            if verdict.reason.startswith("duplicate:"):
                return []  # a second delivery: the root answers the first
            self.rejected += 1
            self.log.append(("warn", "round {}: rejected update on {} ({} bytes): {}".format(
                cur.round, topic, len(payload), verdict.reason)))
            return [self._status(client, max(verdict.round, 0), False, verdict.reason)]
        key = (client, cur.round)
        self.pending[key] = (verdict.num_examples, verdict.metrics)
        self.folded.add(key)
        if self.first_pending_at is None:
            self.first_pending_at = now
        if len(self.pending) >= self.cfg.partial_updates and self.outstanding is None:
            return self._send(now)
        return [Persist()]

    def _fold_in(self, tensors, num_examples, staleness, norm):
        coef, weight = strategies.fold_weight("fedavg", num_examples)
        clip = self.current.clip_norm
        if clip:
            norm = strategies.update_norm(tensors) if norm is None else norm
            if norm > clip:
                coef *= clip / norm
        fold = self.fold
        return fold.add(tensors, coef, weight), lambda: fold.subtract(tensors, coef, weight)

    def _expectation(self):
        cur, c = self.current, self.cfg
        return Expectation(
            federation=c.federation, round=cur.round, versions={cur.digest: cur.round},
            shapes=cur.shapes, codec=cur.codec, accepted=frozenset(self.folded),
            sampled=frozenset(cur.sampled) if cur.sampled is not None else None,
            max_bytes=c.max_update_bytes, max_norm=cur.max_norm, max_examples=c.max_examples,
            client_max_examples=c.client_max_examples, keyring=self.keyring)

    def _send(self, now):
        """The pending sums as a partial (one in flight at a time); a new sum starts."""
        if self.outstanding is not None or not self.pending:
            return [Persist()]
        cur = self.current
        payload = partial_message(self.cfg.federation, self.cfg.station, cur.round, cur.digest,
                                  self.seq, self.fold, self.pending, self.station_key)
        self.outstanding = [cur.round, self.seq, payload, now]
        self.sent.append((cur.round, self.seq, sorted(c for c, _ in self.pending)))
        self.seq += 1
        self.fold = Fold(cur.shapes, cur.grid)
        self.pending, self.first_pending_at = OrderedDict(), None
        return [Persist(), Publish(self.topics.partial(self.cfg.station), payload, 1, False)]

    def _status(self, client, round_, ok, reason):
        msg = Message(kind="status", federation=self.cfg.federation, round=round_,
                      client_id=client, params={"accepted": ok, "reason": reason,
                                                "current_round": self.current.round})
        return Publish(self.topics.status(client), encode_message(msg), 1, False)

    # --- persistence -------------------------------------------------------------------------
    def to_bytes(self):
        """The state (sums not yet sent, the partial in flight, the round) as one blob."""
        tensors = OrderedDict()
        fold = None
        if self.fold is not None:
            sums, fold = self.fold.to_state()
            tensors.update(("fold/" + n, a) for n, a in sums.items())
        out = self.outstanding
        if out is not None:
            tensors["outstanding"] = np.frombuffer(out[2], np.uint8)
        state = {"current": None if self.current is None else self.current.to_json(),
                 "fold": fold, "seq": self.seq, "rejected": self.rejected,
                 "pending": [[c, v, n, m] for (c, v), (n, m) in self.pending.items()],
                 "folded": sorted([c, v] for c, v in self.folded),
                 "outstanding": None if out is None else [out[0], out[1]]}
        return encode_tensors(tensors, {"edgefl.regional_state": json.dumps(state)})

    def restore(self, blob):
        try:
            tensors, meta = decode_tensors(blob)
            state = json.loads(meta["edgefl.regional_state"])
        except (WireError, KeyError, ValueError) as exc:
            raise EdgeRuntimeError("regional aggregator state is unreadable ({}) — delete it to "
                                   "start over".format(exc))
        cur = state["current"]
        if cur is not None:
            msg = Message("round", self.cfg.federation, round=cur["round"], base_digest=cur["digest"],
                          params={"sampled": cur["sampled"], "codec": cur["codec"],
                                  "final": cur["final"]})
            fold = (OrderedDict(), OrderedDict(), None, None) if cur["final"] else \
                read_fold_params(cur["fold"])
            self.current = _Round(msg, fold)
        if state["fold"] is not None:
            sums = OrderedDict((k[5:], v) for k, v in tensors.items() if k.startswith("fold/"))
            self.fold = Fold.from_state(sums, state["fold"])
        self.seq, self.rejected = state["seq"], state["rejected"]
        self.pending = OrderedDict(((c, v), (n, m)) for c, v, n, m in state["pending"])
        self.first_pending_at = float("-inf") if self.pending else None  # send them soon
        self.folded = set((c, v) for c, v in state["folded"])
        if state["outstanding"] is not None:
            self.outstanding = state["outstanding"] + [tensors["outstanding"].tobytes(),
                                                       float("-inf")]
