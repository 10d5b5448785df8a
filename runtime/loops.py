"""Thin I/O loops around the aggregator and agent state machines.

They connect the transport, feed events to the pure core, perform its actions (publish,
persist atomically) and stop when the federation is done, ``stop()`` says so or time runs out.
"""

import time

from edgefl.runtime.aggregator import AggregatorCore, Persist, Publish
from edgefl.runtime.errors import EdgeRuntimeError, fault_location
from edgefl.runtime.persist import atomic_write, read_bytes
from edgefl.runtime.quarantine import Quarantine
from edgefl.runtime.state_store import StateStore
from edgefl.runtime.transport import shared


CONNECT_TIMEOUT_S = 30.0


def connect_timeout(run_timeout):
    """How long to wait for the broker: 30 s, or less when the whole run may take less."""
    return CONNECT_TIMEOUT_S if run_timeout is None else max(0.5, min(CONNECT_TIMEOUT_S, run_timeout))


def wait_connected(transport, timeout=CONNECT_TIMEOUT_S, clock=time.time):
    """Poll until the transport reports ``connected``; returns the other events seen meanwhile."""
    end = clock() + timeout
    early = []
    while clock() < end:
        batch = transport.poll(0.1)
        for i, ev in enumerate(batch):
            if ev.kind == "connected":  # keep what came with it (e.g. retained messages)
                return early + [e for e in batch[i + 1:] if e.kind != "connected"]
            early.append(ev)
    err = getattr(transport, "last_error", None)
    raise EdgeRuntimeError("could not connect to the MQTT broker within {:.0f}s{} — check "
                           "host, port, TLS and credentials".format(
                               timeout, " ({})".format(err) if err else ""))


def open_aggregator(config, global_model, state_path=None):
    """A new core, or the one persisted at ``state_path`` (restart resumes the same round)."""
    core = StateStore(state_path).load(config) if state_path else None
    return core or AggregatorCore(config, global_model)


def _perform(actions, transport, store, core):
    # persist first: an "accepted" status is only sent once the update is on disk
    if store is not None and any(isinstance(a, Persist) for a in actions):
        store.save(core)
    for a in actions:
        if isinstance(a, Publish):
            transport.publish(a.topic, a.payload, a.qos, a.retain)


class _Committer(object):
    """Performs a core's actions: each batch at once (``commit_s`` 0: the state is saved after
    every accepted update, as the state machine asks), or grouped: the actions of the messages
    handled within ``commit_s`` seconds, or until the transport goes quiet, wait; then one save
    and their publishes, in order. Nothing is published before the state that holds it is saved,
    so a crash loses only updates whose senders never heard "accepted": they resend."""

    def __init__(self, transport, store, core, commit_s, clock):
        self.transport, self.store, self.core = transport, store, core
        self.commit_s, self.clock = float(commit_s or 0.0), clock
        self.held, self.since = [], 0.0

    def add(self, actions):
        if not self.commit_s:
            _perform(actions, self.transport, self.store, self.core)
            return
        if actions and not self.held:
            self.since = self.clock()
        self.held += actions

    def flush(self, quiet=False):
        if self.held and (quiet or self.clock() - self.since >= self.commit_s):
            held, self.held = self.held, []
            _perform(held, self.transport, self.store, self.core)


def _handle(core, ev, quarantine, now):
    """Feed one message to the core, marked in flight (``quarantine``) while it is processed.

    No ``finally``: a message whose processing escapes the core's own isolation stays marked,
    and is quarantined on the restart."""
    if quarantine is None or not ev.payload or ev.retain:
        return core.on_message(ev.topic, ev.payload, now, retain=ev.retain)
    digest = quarantine.begin(ev.payload)
    actions = core.on_message(ev.topic, ev.payload, now, digest=digest)
    quarantine.end()
    return actions


def _open_quarantine(core, state_path, log):
    quarantine = Quarantine(state_path)
    found = quarantine.recover()
    core.quarantined = quarantine.digests
    if found and log:
        log("warn", "the aggregator stopped while processing message sha256 {}; it is "
                    "quarantined and will be rejected, not processed again".format(found))
    return quarantine


def _drain_log(source, log):
    lines = getattr(source, "log", None)
    if lines:
        for line in lines:
            if log:
                log(*line)
        del lines[:]


def _report_rounds(core, on_round, seen, store):
    """Hand each new history entry to ``on_round`` as soon as its round closes, before the next
    message can change the global model; persist what it added to the entries. Returns ``seen``."""
    if on_round is None or seen >= len(core.history):
        return seen
    while seen < len(core.history):
        on_round(core.history[seen])
        seen += 1
    if store is not None:
        store.save(core)
    return seen


def serve_aggregator(core, transport, state_path=None, stop=None, timeout=None,
                     on_round=None, clock=time.time, poll_s=0.2, log=None, commit_s=0.0):
    """Run the aggregator until the last round closes (or ``stop()``/``timeout``).

    Args:
        on_round: called with each new history entry (a dict) right after its round closes (it may
            add to the entry, e.g. a central evaluation; the state is persisted again afterwards).
        log: called as ``log(level, text)`` for each line the core logs (rejected updates).
        commit_s: group commit (see ``_Committer``): with thousands of updates a round, one save
            of the running sum per ``commit_s`` seconds instead of one per update.
    Returns:
        the core (its ``history`` and ``global_model`` hold the results).
    """
    store = StateStore(state_path) if state_path else None
    quarantine = _open_quarantine(core, state_path, log) if state_path else None
    transport.connect()
    transport.subscribe(shared(core.topics.updates, core.cfg.share_group), 1)
    if core.cfg.stations:  # hierarchical: regional aggregators' partials and forwarded resends
        transport.subscribe(core.topics.partials, 1)
        transport.subscribe(core.topics.forwards, 1)
    if log:
        log("info", "connecting to the MQTT broker")
    early = wait_connected(transport, connect_timeout(timeout))
    _perform(core.start(clock()), transport, store, core)
    end = None if timeout is None else clock() + timeout
    seen = len(core.history)
    pending = early
    commit = _Committer(transport, store, core, commit_s, clock)
    while not core.done and not (stop and stop()) and (end is None or clock() < end):
        batch = pending + transport.poll(poll_s)
        for ev in batch:
            if ev.kind == "message":
                commit.add(_handle(core, ev, quarantine, clock()))
                seen = _report_rounds(core, on_round, seen, store)
        pending = []
        commit.add(core.tick(clock()))
        commit.flush(quiet=not batch or core.done)
        seen = _report_rounds(core, on_round, seen, store)
        _drain_log(core, log)
        _drain_log(transport, log)  # dropped chunk streams
    commit.flush(quiet=True)
    _report_rounds(core, on_round, seen, store)
    _drain_log(core, log)
    if quarantine is not None:
        quarantine.close()
    transport.flush(10.0)
    return core


class _BlobStore(object):
    """Persists a core with ``to_bytes`` to one file, atomically."""

    def __init__(self, path):
        self.path = path

    def save(self, core):
        atomic_write(self.path, core.to_bytes())


def serve_regional(core, transport, state_path=None, stop=None, timeout=None,
                   clock=time.time, poll_s=0.2, log=None, commit_s=0.0):
    """Run a station's regional aggregator (``edgefl.runtime.regional``) until the root announces
    that the federation is over (or ``stop()`` / ``timeout``); ``commit_s`` as in
    ``serve_aggregator``. Returns the core."""
    blob = read_bytes(state_path) if state_path else None
    if blob:
        core.restore(blob)
    store = _BlobStore(state_path) if state_path else None
    transport.connect()
    for topic in core.subscriptions():
        transport.subscribe(topic, 1)
    pending = wait_connected(transport, connect_timeout(timeout))
    end = None if timeout is None else clock() + timeout
    commit = _Committer(transport, store, core, commit_s, clock)
    while not core.done and not (stop and stop()) and (end is None or clock() < end):
        batch = pending + transport.poll(poll_s)
        for ev in batch:
            if ev.kind != "message":
                continue
            if ev.retain and core.topics.client_from_update_topic(ev.topic):
                transport.publish(ev.topic, b"", 1, True)  # a retained update: poison, cleared
                continue
            try:
                actions = core.on_message(ev.topic, ev.payload, clock())
            except Exception as exc:  # one message never stops the station
                actions = []
                if log:
                    log("error", "message on {} not handled: {}: {}".format(
                        ev.topic, type(exc).__name__, exc))
            commit.add(actions)
        pending = []
        commit.add(core.tick(clock()))
        commit.flush(quiet=not batch)
        _drain_log(core, log)
        _drain_log(transport, log)
    commit.flush(quiet=True)
    _drain_log(core, log)
    transport.flush(10.0)
    return core


def _follow_subscriptions(core, transport, subscribed):
    """Subscribe to what the core wants now and drop what it no longer wants (the snapshot
    topic is wanted only until a model loads); returns the new set."""
    wanted = set(core.subscriptions())
    for topic in sorted(wanted - subscribed):
        transport.subscribe(topic, 1)
    for topic in sorted(subscribed - wanted):
        transport.unsubscribe(topic)
    return wanted


def _perform_agent(core, transport, state_path, log, saved_round):
    """Print the core's and the transport's log lines, publish what the core queued (refusals),
    persist a newly loaded round (so a restart still refuses older announcements); returns the
    round on disk."""
    _drain_log(core, log)
    _drain_log(transport, log)  # dropped chunk streams
    for topic, payload in core.outbox:
        transport.publish(topic, payload, 1, False)
    del core.outbox[:]
    if state_path and core.model_round != saved_round:
        atomic_write(state_path, core.to_bytes())
    return core.model_round


def run_agent(core, transport, trainer, state_path=None, stop=None, timeout=None,
              max_rounds=None, log=None, clock=time.time, poll_s=0.2):
    """Take part in rounds until the federation ends, ``max_rounds`` or ``stop()``/``timeout``.

    Returns:
        the number of updates published.
    """
    blob = read_bytes(state_path) if state_path else None
    if blob:
        core.restore(blob)
    transport.connect()
    subscribed = _follow_subscriptions(core, transport, set())
    for topic in core.on_demand_subscriptions():
        if topic not in subscribed:  # a persistent session may still hold it from a past run
            transport.unsubscribe(topic)
    if log:
        log("info", "connecting to the MQTT broker")
    pending = wait_connected(transport, connect_timeout(timeout))
    online = core.topics.online(core.cfg.client_id)  # liveness; the Last Will says "offline"
    transport.publish(online, b"online", 1, True)
    # reachable first, then the slow part (e.g. opening an engine and computing features):
    # messages queue at the broker meanwhile
    getattr(trainer, "prepare", lambda: None)()
    end = None if timeout is None else clock() + timeout
    sent = 0
    saved_round = core.model_round
    while not core.done and not (stop and stop()) and (end is None or clock() < end):
        job, unanswered = None, core.pending
        for ev in pending + transport.poll(poll_s):
            if ev.kind == "message":
                job = core.on_message(ev.topic, ev.payload) or job
        pending = []
        saved_round = _perform_agent(core, transport, state_path, log, saved_round)
        subscribed = _follow_subscriptions(core, transport, subscribed)
        if unanswered is not None and core.pending is None and state_path:
            atomic_write(state_path, core.to_bytes())  # answered: nothing to resend on restart
        for topic, payload in core.resends(clock()):  # no status yet: at least once
            transport.publish(topic, payload, 1, False)
            if log:
                log("info", "round {}: resent the update (no status yet)".format(
                    core.pending.round))
        if max_rounds and sent >= max_rounds:
            if core.pending is None:
                break  # the last update is answered
            continue
        if job is None or job.round != core.current.round:
            continue
        try:
            result = trainer.train(job.global_model, job.options)
            topic, payload = core.on_trained(job, result, clock())
        except Exception as exc:  # isolation: a round whose model or options cannot be trained on
            if log:  # is skipped (nothing persisted, the state as it was), not the agent stopped
                log("warn", "round {}: training failed and the round is skipped: {}: {} at {}".format(
                    job.round, type(exc).__name__, str(exc)[:200], fault_location(exc)))
            continue
        if state_path:
            atomic_write(state_path, core.to_bytes())
        transport.publish(topic, payload, 1, False)
        transport.flush(30.0)
        sent += 1
        if log:
            log("info", "round {}: sent {} bytes ({} examples)".format(
                job.round, len(payload), result.num_examples))
    transport.publish(online, b"offline", 1, True)
    transport.flush(10.0)
    return sent
