"""The root of a hierarchical federation: partials from regional aggregators, direct updates and
resends, merged into one exact running sum (the aggregator's side; ``edgefl.runtime.regional``
is the station's).

With ``AggregatorConfig.stations`` set, the aggregator also takes, per round:

* partials (``edgefl/{federation}/partial/{station}``, ``edgefl.runtime.partial``): exact int64
  sums of a station's updates on this round's grid, merged with ``Fold.merge`` — the root's
  model is then bitwise the model one aggregator would make from the same updates. Each
  contributor gets its ``accepted`` status from the root (bridged to every station, so it
  reaches the client wherever it is now), the station an acknowledgement on
  ``partial-status/{station}``.
* direct updates (a client connected to the root's broker): folded as in a flat federation.
* resends (``params["resend"]``, directly or forwarded unfolded by a station on
  ``forward/{station}``): the first copy may sit in a partial not yet merged — a resend reaches
  whichever station the client passes over next — so a resend is kept, not folded, until the
  round closes; then it is folded unless a merged partial holds the same (client, version).
  Only resends are kept, so memory stays bounded by them.

A partial is refused whole (its contributors told why, its station too) when it is for
another round or grid, or when a contributor was already counted other than as a kept resend:
first copies travel to exactly one station, so that means a faulty station.
"""

from collections import OrderedDict

from edgefl.runtime.actions import Publish
from edgefl.runtime.errors import WireError
from edgefl.runtime.partial import read_partial
from edgefl.runtime.validate import validate_update
from edgefl.runtime.wire import Limits, Message, decode_message, encode_message

__all__ = ["RootHierarchy", "HIERARCHY_PROBLEMS"]


def _problems(cfg):
    return [
        (cfg.mode != "sync", "hierarchical aggregation (stations) runs sync rounds only — a "
                             "FedBuff buffer closes on a count a station's partial would overshoot"),
        (cfg.strategy != "fedavg", "hierarchical aggregation (stations) needs strategy fedavg: a "
                                   "partial is a weighted sum, and the median or trimmed mean of all "
                                   "updates cannot be rebuilt from sums — run {} flat".format(
                                       cfg.strategy)),
        (not cfg.clients, "hierarchical aggregation (stations) needs the federation's clients list "
                          "(its fixed-point grid is sized by their declared example counts)"),
        (bool(set(cfg.stations) & set(cfg.clients)), "a station id is also a client id"),
    ]


def HIERARCHY_PROBLEMS(cfg):
    """(bad, why) rows for ``AggregatorConfig.check`` (none apply without stations)."""
    return _problems(cfg) if cfg.stations else []


class RootHierarchy(object):
    """Mixed into ``AggregatorCore``: the hierarchical paths (see the module docstring)."""

    def _routes(self):
        """topic kind -> handler(sender, topic, payload, now) for the hierarchical topics."""
        return {"partial": self._on_partial, "forward": self._on_forward}

    # --- direct updates, resends and forwarded resends --------------------------------------
    def _on_forward(self, station, topic, payload, now):
        if station not in self.cfg.stations:
            return []
        return self._on_direct(None, topic, payload, now)

    def _on_direct(self, client, topic, payload, now):
        """An update at the root: folded now, or kept until the close when it is a resend."""
        verdict = validate_update(payload, self._expectation(), topic_client=client)
        client = verdict.client_id if client is None else client
        if verdict.ok:
            reason, undo = self._fold_in(verdict.tensors, verdict.num_examples,
                                         verdict.staleness, None)
            if reason:
                verdict.ok, verdict.reason = False, reason
        if not verdict.ok:
            return self._refuse(client, topic, payload, verdict.reason, "warn", None,
                                verdict.round) if client else []
        key = (client, self.round - verdict.staleness)
        if verdict.resend:
            undo()  # checked; folded at the close unless a partial holds it
            self.buffered[key] = verdict.tensors
        self.accepted[key] = (verdict.num_examples, verdict.metrics)
        self.bytes_in += len(payload)
        actions = [self._status(client, verdict.round, True, "")]
        try:
            actions += self._close_round(now) if self._ready(now) else [self._persist()]
        except Exception:
            if not verdict.resend:
                undo()
            raise
        self.contributed.add(key)
        return actions

    def _fold_kept(self):
        """Fold the kept resends no merged partial held (at the close); returns their undo."""
        undos = []
        for (cid, version), tensors in self.buffered.items():
            n = self.accepted[(cid, version)][0]
            reason, undo = self._fold_in(tensors, n, self.round - version, None)
            if reason:  # checked when kept: only a changed grid could do this
                raise ValueError("kept update of {!r} no longer folds: {}".format(cid, reason))
            undos.append(undo)
        return undos

    # --- partials -------------------------------------------------------------------------
    def _on_partial(self, station, topic, payload, now):
        if station not in self.cfg.stations:
            return []
        try:
            msg = decode_message(payload, Limits(max_bytes=self.cfg.max_update_bytes))
            if msg.client_id != station or msg.federation != self.cfg.federation:
                raise WireError("partial", "sent on {!r}'s topic as {!r} of {!r}".format(
                    station, msg.client_id[:60], msg.federation[:60]))
            part = read_partial(msg, self.fold.grid, self.keyring)
        except WireError as exc:
            return self._refuse_partial(station, topic, payload, -1, -1, str(exc), {})
        if (station, part.round, part.seq) in self.merged:
            return [self._partial_status(station, part.round, part.seq, True, "duplicate")]
        reason = self._partial_problem(part)
        if reason:
            return self._refuse_partial(station, topic, payload, part.round, part.seq, reason,
                                        part.contributors)
        return self._merge(part, payload, now)

    def _partial_problem(self, part):
        if part.round != self.round or part.digest != self.digest:
            return "stale-round: partial for round {} ({}...), current round is {}".format(
                part.round, part.digest[:12], self.round)
        sample = set(self.sampled) if self.sampled is not None else None
        caps = self.cfg.client_max_examples
        for (cid, _), (n, _) in part.contributors.items():
            if sample is not None and cid not in sample:
                return "not-sampled: {!r} is not in round {}'s sample".format(cid[:60], self.round)
            if n > min(caps.get(cid, self.cfg.max_examples), self.cfg.max_examples):
                return "weight-bound: {!r} claims {} examples".format(cid[:60], n)
        twice = sorted(k[0] for k in part.contributors if k in self.accepted
                       and k not in self.buffered)
        if twice:
            return "overlap: already counted: {}".format(", ".join(c[:60] for c in twice[:5]))
        return None

    def _merge(self, part, payload, now):
        kept = OrderedDict((k, self.buffered.pop(k)) for k in part.contributors
                           if k in self.buffered)  # the partial holds their first copy
        added = [k for k in part.contributors if k not in self.accepted]
        self.fold.merge(part.sums, part.weight, part.count)
        self.accepted.update(part.contributors)
        self.merged.add((part.station, part.round, part.seq))
        self.bytes_in += len(payload)
        actions = [self._status(cid, part.round, True, "") for cid, _ in part.contributors]
        actions.append(self._partial_status(part.station, part.round, part.seq, True, ""))
        fold, closed = self.fold, len(self.history)
        try:
            actions += self._close_round(now) if self._ready(now) else [self._persist()]
        except Exception:
            if len(self.history) != closed:  # the round was committed with this partial in it:
                raise  # nothing to take out (and self.fold may be the next round's)
            fold.merge(OrderedDict((n, -a) for n, a in part.sums.items()), -part.weight,
                       -part.count)
            for k in added:
                del self.accepted[k]
            self.buffered.update(kept)
            self.merged.discard((part.station, part.round, part.seq))
            raise
        self.contributed.update(part.contributors)
        return actions

    def _refuse_partial(self, station, topic, payload, round_, seq, reason, contributors):
        """Count and log a refused partial; tell its station, and its contributors that were
        not counted otherwise (a late partial's client may have been, from its resend)."""
        self.rejected += 1
        code = reason.split(":", 1)[0]
        self.rejections[code] = self.rejections.get(code, 0) + 1
        self.log.append(("warn", "round {}: refused partial on {} ({} bytes): {}".format(
            self.round, topic, len(payload), reason)))
        counted = set(self.accepted) | set(
            (cid, h["round"]) for h in self.history[-3:] for cid in h["clients"])
        actions = [self._status(cid, round_, False, "station {}: {}".format(station, reason))
                   for key in contributors for cid in [key[0]] if key not in counted]
        return actions + [self._partial_status(station, round_, seq, False, reason)]

    def _partial_status(self, station, round_, seq, ok, reason):
        msg = Message(kind="status", federation=self.cfg.federation, round=max(round_, 0),
                      client_id=station, params={"accepted": ok, "reason": reason,
                                                 "current_round": self.round, "seq": seq})
        return Publish(self.topics.partial_status(station), encode_message(msg), 1, False)
