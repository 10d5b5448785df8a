"""kill -9 of the aggregator mid-round and of an agent mid-training, with real processes
(``python -m edgefl.runtime aggregate`` and agent processes) through a real Mosquitto."""

import json
import os
import signal
import sys
from pathlib import Path

import pytest

CLIENTS = ["c0", "c1", "c2", "c3"]
HOLD = Path(__file__).resolve().parent / "hold"  # sitecustomize.py: the aggregator waits in save


@pytest.mark.slow
def test_aggregator_kill9_mid_round_resumes_and_ends_with_the_uninterrupted_model(fedrun, flkit, wait):
    # Prepare: 3 rounds, every round waits for all 4 clients; c2 and c3 train slowly so each
    # round has a window where exactly c0 and c1 are accepted.
    agg = dict(federation="rel", clients=CLIENTS, min_clients=4, rounds=3, deadline_s=60.0)
    expected = flkit.reference_run(flkit.aggregator_config(**agg), flkit.init_model(), [CLIENTS] * 3)
    aggregator = fedrun.start_aggregator(agg)
    for cid in CLIENTS:
        fedrun.start_agent(cid, delay_s=2.0 if cid in ("c2", "c3") else 0.0)

    # Execute: kill -9 once round 2 holds exactly the fast clients' updates on disk.
    def mid_round_two():
        state = fedrun.state()
        return state if state and state.round == 2 and len(state.accepted) == 2 else None

    before = wait(mid_round_two, 120, "round 2 with 2 accepted updates")
    aggregator.send_signal(signal.SIGKILL)
    aggregator.wait(timeout=10)
    after_kill = fedrun.state()
    restarted = fedrun.start_aggregator(agg)
    assert fedrun.wait_exit(restarted) == 0, fedrun.log("aggregator")

    # Assert: the restart resumed round 2 with both accepted updates (nothing lost), every round
    # has all four clients, and the final model is bitwise the uninterrupted run's.
    assert sorted(before.accepted) == [("c0", 2), ("c1", 2)]
    assert after_kill.round == 2 and sorted(after_kill.accepted) == sorted(before.accepted)
    final, meta = fedrun.final_model()
    state = fedrun.state()
    assert [h["clients"] for h in state.history] == [CLIENTS] * 3
    assert [h["clients"] for h in state.history] == [h["clients"] for h in expected.history]
    assert flkit.models_equal(final, expected.global_model)
    assert not flkit.models_equal(final, flkit.init_model())


@pytest.fixture(params=["host", "python36"])
def stack(request):
    """(python, PYTHONPATH entries) of the aggregator and c2: this interpreter, or the Python 3.6
    edge stack (paho 1.6, which acknowledges every message as it arrives, with no way to wait)."""
    if request.param == "host":
        return sys.executable, []
    return request.getfixturevalue("python36"), [request.getfixturevalue("edge36_path")]


@pytest.mark.slow
def test_aggregator_kill9_after_updates_arrived_and_before_they_were_persisted(fedrun, flkit, wait, stack):
    # Prepare: 3 rounds of 4 clients; c2 and c3 train slowly. A test hook (tests/reliability/
    # hold) stops the real aggregator process in round 2 as it is about to persist c2's update,
    # once its MQTT client has received (and acknowledged to the broker) all 8 updates of
    # rounds 1-2: c2's update is accepted in memory only, c3's waits in the process's queue.
    python, path = stack
    agg = dict(federation="rel", clients=CLIENTS, min_clients=4, rounds=3, deadline_s=60.0)
    expected = flkit.reference_run(flkit.aggregator_config(**agg), flkit.init_model(), [CLIENTS] * 3)
    marker = fedrun.dir / "held.json"
    hold = {"round": 2, "accepted": 3, "received": 8, "marker": str(marker)}
    aggregator = fedrun.start_aggregator(
        agg, python=python,
        env={"PYTHONPATH": os.pathsep.join([str(HOLD)] + path), "EDGEFL_TEST_HOLD": json.dumps(hold)},
    )
    edge = {"python": python, "env": {"PYTHONPATH": os.pathsep.join(path)}} if path else {}
    for cid in CLIENTS:
        fedrun.start_agent(cid, delay_s=2.0 if cid in ("c2", "c3") else 0.0, **(edge if cid == "c2" else {}))
    wait(marker.exists, 40, "the aggregator to hold in round 2")
    held = json.loads(marker.read_text())

    # Execute: kill -9 while it holds; restart it without the hook.
    aggregator.send_signal(signal.SIGKILL)
    aggregator.wait(timeout=10)
    after_kill = fedrun.state()
    restarted = fedrun.start_aggregator(agg, python=python, env=edge.get("env"))
    assert fedrun.wait_exit(restarted) == 0, fedrun.log("aggregator")

    # Assert: all 8 updates had reached the aggregator, only c0's and c1's round-2 updates were
    # on disk; after the restart c2 and c3 resent theirs, every round closed with all four
    # clients, and the final model is bitwise the uninterrupted run's.
    assert len(held["received"]) == 8 and len(held["accepted"]) == 3
    assert after_kill.round == 2 and sorted(after_kill.accepted) == [("c0", 2), ("c1", 2)]
    assert all("resent the update" in fedrun.log(cid) for cid in ("c2", "c3"))
    state = fedrun.state()
    assert [h["clients"] for h in state.history] == [CLIENTS] * 3
    final, _ = fedrun.final_model()
    assert flkit.models_equal(final, expected.global_model)


@pytest.mark.slow
def test_agent_killed_mid_training_rejoins_next_round_and_round_closes_at_deadline(fedrun, flkit, wait):
    # Prepare: round 1 closes at its 5 s deadline with the quorum of 3 it has once c3 is killed
    # (the restarted c3 has as long to join round 2).
    agg = dict(federation="rel", clients=CLIENTS, min_clients=3, rounds=2, deadline_s=5.0)
    expected = flkit.reference_run(flkit.aggregator_config(**agg), flkit.init_model(), [CLIENTS[:3], CLIENTS])
    aggregator = fedrun.start_aggregator(agg)
    agents = {cid: fedrun.start_agent(cid, delays={"1": 30.0} if cid == "c3" else {}) for cid in CLIENTS}

    # Execute: kill -9 c3 while it trains round 1; restart it once round 2 is open.
    wait(lambda: fedrun.training_started("c3") >= 1, 120, "c3 to start training round 1")
    agents["c3"].send_signal(signal.SIGKILL)
    agents["c3"].wait(timeout=10)
    wait(lambda: getattr(fedrun.state(), "round", 0) >= 2, 120, "round 2 to open")
    fedrun.start_agent("c3")
    assert fedrun.wait_exit(aggregator) == 0, fedrun.log("aggregator")

    # Assert: round 1 closed with the three that answered, c3 took part in round 2, and the
    # final model is the reference run with that participation.
    state = fedrun.state()
    assert [h["clients"] for h in state.history] == [CLIENTS[:3], CLIENTS]
    final, _ = fedrun.final_model()
    assert flkit.models_equal(final, expected.global_model)


def test_replayed_update_after_a_restart_is_still_a_duplicate(flkit):
    # Prepare: an aggregator accepts c0's update and is "killed" (only its persisted state survives).
    cfg = flkit.aggregator_config(federation="rel", clients=CLIENTS, min_clients=4, rounds=1)
    core = flkit.AggregatorCore(cfg, flkit.init_model())
    ann = flkit.announcement(core.start(0.0))
    agent = flkit.AgentCore(flkit.AgentConfig("rel", "c0"))
    job = agent.on_message(ann.topic, ann.payload)
    topic, payload = agent.on_trained(job, flkit.TargetTrainer("c0").train(job.global_model, job.options))
    core.on_message(topic, payload, 0.0)
    # Execute: restore from the persisted bytes and replay the same update.
    restored = flkit.AggregatorCore.from_bytes(core.to_bytes())
    actions = restored.on_message(topic, payload, 1.0)
    # Assert: refused as a duplicate, with its reason sent to c0; the accepted set is unchanged.
    (status,) = [a for a in actions if a.topic.endswith("/status/c0")]
    assert flkit.status_of(status.payload) == (1, False, "duplicate: 'c0' already contributed to round 1")
    assert list(restored.accepted) == [("c0", 1)]
