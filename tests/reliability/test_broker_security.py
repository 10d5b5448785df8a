"""A federation made by `edgefl federation init`, served by a real Mosquitto: TLS with the
generated CA, per-client passwords, and the ACL that pins each client to its own topics."""

import getpass
import json
import os
import queue
import ssl

import pytest

from edgefl.errors import EdgeflError
from edgefl.security import init_federation
from edgefl.runtime.transport import Topics

FED = "orbit"
T = Topics(FED)


@pytest.fixture
def fed(tmp_path, broker_factory, free_tcp_port):
    """A 3-client federation and its broker (TLS, passwords, ACL) on a loopback port."""
    layout = init_federation(
        FED,
        3,
        tmp_path / "fed",
        host="localhost",
        port=free_tcp_port,
        bind="127.0.0.1",
        broker_user=getpass.getuser() if os.geteuid() == 0 else None,
    )
    broker_factory(layout.broker_conf.read_text(), port=free_tcp_port, name="tls")
    return layout


def _cfg(layout, who):
    path = layout.aggregator_config if who == "aggregator" else layout.agent_configs[who]
    return json.loads(path.read_text())["mqtt"]


def _tls(mqtt_cfg, **override):
    tls = {k: mqtt_cfg[k] for k in ("ca_certs", "certfile", "keyfile")}
    tls["cert_reqs"] = ssl.CERT_REQUIRED
    tls.update(override)
    return tls


def _connect(recorders, layout, who, client_id=None, clean_session=True, **tls_override):
    cfg = _cfg(layout, who)
    rec = recorders(
        layout.port,
        client_id or who,
        username=cfg["username"],
        password=cfg["password"],
        tls=_tls(cfg, **tls_override),
        clean_session=clean_session,
    )
    rc = rec.connect()
    assert not rc.is_failure, f"{who} refused: {rc}"
    return rec


def _no_session(rec, timeout=2.0):
    """True when the broker gives this client no accepted session (TLS failure, dropped
    connection with no CONNACK, or a refusing CONNACK)."""
    try:
        rc = rec.connect(timeout=timeout)
    except (ssl.SSLError, OSError, queue.Empty):
        return True
    return rc.is_failure


def test_every_identity_connects_over_tls(fed, recorders):
    for who in ["aggregator", *fed.clients]:
        _connect(recorders, fed, who)


def test_wrong_password_is_refused(fed, recorders):
    cfg = _cfg(fed, "client-000")
    rec = recorders(fed.port, "client-000", username="client-000", password="guess", tls=_tls(cfg))
    assert _no_session(rec)


def test_password_of_another_client_is_refused(fed, recorders):
    cfg = _cfg(fed, "client-000")
    other = _cfg(fed, "client-001")
    rec = recorders(fed.port, "x", username="client-000", password=other["password"], tls=_tls(cfg))
    assert _no_session(rec)


def test_missing_client_certificate_is_refused(fed, recorders):
    cfg = _cfg(fed, "client-000")
    tls = {"ca_certs": cfg["ca_certs"], "cert_reqs": ssl.CERT_REQUIRED}
    rec = recorders(fed.port, "client-000", username="client-000", password=cfg["password"], tls=tls)
    assert _no_session(rec)


def test_broker_of_another_federation_is_not_trusted(fed, recorders, tmp_path):
    other = init_federation("other", 1, tmp_path / "other")
    cfg = _cfg(fed, "client-000")
    rec = recorders(
        fed.port,
        "client-000",
        username="client-000",
        password=cfg["password"],
        tls=_tls(cfg, ca_certs=str(other.out / "ca" / "ca.crt")),
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        rec.connect(timeout=3)


def test_plaintext_connection_gets_no_session(fed, recorders):
    rec = recorders(
        fed.port, "client-000", username="client-000", password=_cfg(fed, "client-000")["password"]
    )
    assert _no_session(rec)


def test_client_cannot_publish_as_another_or_as_the_aggregator(fed, recorders):
    agg = _connect(recorders, fed, "aggregator")
    agg.subscribe(f"{T.root}/#")
    b = _connect(recorders, fed, "client-001")
    b.subscribe(f"{T.root}/round")
    a = _connect(recorders, fed, "client-000")
    a.publish(T.update("client-001"), b"forged update")  # B's topic
    a.publish(f"{T.root}/round", b"forged global model")
    a.publish(T.status("client-001"), b"forged status")
    a.publish(T.update("client-000"), b"own update")
    got = agg.drain(1.0)
    assert got == [(T.update("client-000"), b"own update")]
    assert b.drain(0.3) == []


def test_clients_read_the_retained_snapshot_and_cannot_forge_it(fed, recorders):
    """Coded-delta announcements: a client that missed a version fetches the snapshot."""
    agg = _connect(recorders, fed, "aggregator")
    agg.publish(T.snapshot, b"the full model", retain=True)
    a = _connect(recorders, fed, "client-000")
    a.publish(T.snapshot, b"forged full model", retain=True)
    b = _connect(recorders, fed, "client-001")
    b.subscribe(T.snapshot)
    assert b.drain(1.0) == [(T.snapshot, b"the full model")]


def test_client_cannot_read_another_clients_update_or_status(fed, recorders):
    agg = _connect(recorders, fed, "aggregator")
    agg.subscribe(T.update("client-001"))
    a = _connect(recorders, fed, "client-000")
    for topic in [f"{T.root}/#", f"{T.root}/update/#", T.update("client-001"), T.status("client-001")]:
        a.subscribe(topic)
    b = _connect(recorders, fed, "client-001")
    b.subscribe(T.status("client-001"))
    b.publish(T.update("client-001"), b"B's update")
    agg.publish(T.status("client-001"), b"accepted")
    assert agg.drain(1.0) == [(T.update("client-001"), b"B's update")]
    assert b.drain(0.3) == [(T.status("client-001"), b"accepted")]
    assert a.drain(0.3) == []  # A saw neither B's update nor B's status


def test_client_id_is_pinned_to_the_user_so_queued_messages_cannot_be_stolen(fed, recorders):
    b = _connect(recorders, fed, "client-001", clean_session=False)
    b.subscribe(T.status("client-001"), qos=1)
    b.close()
    agg = _connect(recorders, fed, "aggregator")
    agg.publish(T.status("client-001"), b"queued while B was away", qos=1)
    thief = _connect(recorders, fed, "client-000", client_id="client-001", clean_session=False)
    assert thief.drain(0.5) == []
    b2 = _connect(recorders, fed, "client-001", clean_session=False)
    assert b2.drain(1.0) == [(T.status("client-001"), b"queued while B was away")]


def test_generated_files_and_modes(fed):
    out = fed.out
    for secret in ["ca/ca.key", "broker/server.key", "broker/passwd", "aggregator/keyring.json"]:
        assert (out / secret).stat().st_mode & 0o077 == 0, secret
    acl = (out / "broker" / "acl").read_text()
    assert "topic write edgefl/orbit/update/client-002" in acl
    assert "topic read edgefl/orbit/update" not in acl.split("user client-000")[1]
    keyring = json.loads((out / "aggregator" / "keyring.json").read_text())["keys"]
    agent = json.loads(fed.agent_configs["client-002"].read_text())
    assert keyring["client-002"] == agent["signing"]["key"]


def test_init_refuses_non_empty_dir_and_bad_names(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("")
    with pytest.raises(EdgeflError, match="not empty"):
        init_federation("ok", 1, tmp_path / "x")
    with pytest.raises(EdgeflError, match="federation name"):
        init_federation("a/#", 1, tmp_path / "y")
    with pytest.raises(EdgeflError, match="at least 1"):
        init_federation("ok", 0, tmp_path / "z")


def test_cli_init_json(tmp_path):
    from typer.testing import CliRunner

    from edgefl.cli.federation import app

    result = CliRunner().invoke(
        app, ["init", "sat", "--clients", "2", "--out", str(tmp_path / "f"), "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["clients"] == ["client-000", "client-001"]
    assert (tmp_path / "f" / "broker" / "mosquitto.conf").exists()


def test_signed_round_over_tls_with_the_generated_configs(fed, flkit):
    """The runtime's own transport, with the configs `federation init` wrote: TLS + password +
    ACL + HMAC. A tampered (re-signed-less) update from client-000 is rejected with a reason;
    the round then completes and its model is the reference run's."""
    from collections import OrderedDict

    import numpy as np

    from edgefl.runtime.signing import Keyring, key_from_hex, sign_message
    from edgefl.runtime.wire import decode_message, encode_message

    agg_json = json.loads(fed.aggregator_config.read_text())
    cfg = flkit.aggregator_config(
        federation=FED, clients=fed.clients, min_clients=3, rounds=1, deadline_s=60.0
    )
    expected = flkit.reference_run(cfg, flkit.init_model(), [fed.clients])
    agg = flkit.AggregatorThread(
        cfg, flkit.init_model(), agg_json["mqtt"], keyring=Keyring.from_file(agg_json["signing"]["keyring"])
    )
    agents = []
    try:
        for cid in fed.clients:
            agent_json = json.loads(fed.agent_configs[cid].read_text())
            key = key_from_hex(agent_json["signing"]["key"])
            agents.append(flkit.ManualAgent(cid, agent_json["mqtt"], federation=FED, sign_key=key).connect())
        a0 = agents[0]
        topic, payload = a0.train(a0.job(1))
        forged = sign_message(a0.sign_key, decode_message(payload))
        forged.tensors = OrderedDict((n, np.array(v) * np.float32(10)) for n, v in forged.tensors.items())
        a0.transport.inner.publish(topic, encode_message(forged), 1, False)  # bypass the signer
        assert a0.status(1) == (1, False, "signature: bad signature")
        for agent in agents:
            agent.publish((topic, payload) if agent is a0 else agent.train(agent.job(1)))
        assert a0.status(2) == (1, True, "")
        agg.join()
    finally:
        agg.stop()
        for agent in agents:
            agent.disconnect()
    assert [h["clients"] for h in agg.core.history] == [fed.clients]
    assert flkit.models_equal(agg.core.global_model, expected.global_model)
    assert agg.core.rejections == {"signature": 1}


def test_a_retained_poison_update_is_ignored_and_cleared_by_the_aggregator(fed, flkit, recorders, wait):
    """Mosquitto's ACL cannot refuse a retained publish on a client's own update topic (it has no
    retain permission), so the aggregator must: a retained update that used to crash it (a
    superscript digit as its round) is ignored, cleared from the broker, and answered by no
    status; the round is untouched."""
    from edgefl.runtime.wire import decode_tensors, encode_tensors

    cfg = flkit.aggregator_config(federation=FED, clients=fed.clients, min_clients=3, rounds=1)
    core = flkit.AggregatorCore(cfg, flkit.init_model())
    ann = flkit.announcement(core.start(0.0))
    agent = flkit.AgentCore(flkit.AgentConfig(FED, "client-000"))
    job = agent.on_message(ann.topic, ann.payload)
    topic, payload = agent.on_trained(job, flkit.TargetTrainer("client-000").train(job.global_model, {}))
    tensors, meta = decode_tensors(payload)
    poison = encode_tensors(dict(tensors), dict(meta, round="\u00b2"))
    a = _connect(recorders, fed, "client-000")
    a.publish(topic, poison, retain=True)  # the generated ACL lets it through
    a.close()
    mqtt = json.loads(fed.aggregator_config.read_text())["mqtt"]
    agg = flkit.AggregatorThread(cfg, flkit.init_model(), mqtt)
    try:
        wait(lambda: any("ignored a retained message" in t for _, t in agg.lines), 10, "the retained update")
    finally:
        agg.stop()
        agg.transport.close()
    assert agg.core.round == 1 and not agg.core.accepted and agg.core.rejections == {}
    check = _connect(recorders, fed, "aggregator")
    check.subscribe(topic)
    assert check.drain(0.5) == []  # cleared: nothing retained comes back on the next start
