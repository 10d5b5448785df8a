"""`edgefl federation init --stations` through the console script: a broker per ground station,
bridged to the central one with its own TLS identity and credentials; regional aggregator
configs whose HMAC key the root holds; and one line + exit 2 for a bad --stations."""

import json


def _lines(path, prefix):
    return [line.split(None, 1)[1] for line in path.read_text().splitlines() if line.startswith(prefix + " ")]


def test_stations_get_a_bridged_broker_and_a_regional_aggregator(edgefl, tmp_path):
    code, out, err = edgefl("federation", "init", "orbit", "--clients", "2", "--port", "9883", "--stations",
                            "gs-a,gs-b@gs-b.example.org:9999", "--out", tmp_path / "fed", "--json")
    assert code == 0, err
    layout = json.loads(out)
    fed = tmp_path / "fed"
    # Each station listens where it was told (gs-a: the next port), bridged to the central broker
    # over TLS as its own account, persistent session both sides, QoS 1 both ways.
    assert [(s["name"], s["host"], s["port"]) for s in layout["stations"]] == [
        ("gs-a", "localhost", 9884), ("gs-b", "gs-b.example.org", 9999)]
    conf = fed / "stations" / "gs-a" / "broker" / "mosquitto.conf"
    assert _lines(conf, "address") == ["localhost:9883"] and _lines(conf, "listener") == ["9884 0.0.0.0"]
    assert _lines(conf, "remote_username") == ["bridge-gs-a"] and _lines(conf, "cleansession") == ["false"]
    assert _lines(conf, "bridge_certfile") == [str(fed / "stations" / "gs-a" / "broker" / "uplink.crt")]
    assert _lines(conf, "topic") == [
        "edgefl/orbit/round/# in 1", "edgefl/orbit/snapshot/# in 1", "edgefl/orbit/status/# in 1",
        "edgefl/orbit/partial-status/gs-a/# in 1", "edgefl/orbit/partial/gs-a/# out 1",
        "edgefl/orbit/forward/gs-a/# out 1", "edgefl/orbit/online/# out 1",
        "edgefl/orbit/agent-status/# out 1"]
    # The central broker knows each bridge account and lets it write only its own partials.
    central_acl = (fed / "broker" / "acl").read_text()
    assert "user bridge-gs-a\n" in central_acl and "topic write edgefl/orbit/partial/gs-a/#" in central_acl
    assert "bridge-gs-a:" in (fed / "broker" / "passwd").read_text()
    assert "topic write edgefl/orbit/partial/gs-b/#" not in central_acl.split("user bridge-gs-b")[0]
    # The root aggregates hierarchically and holds each station's key; each regional config has it.
    agg = json.loads((fed / "aggregator" / "aggregator.json").read_text())
    keyring = json.loads((fed / "aggregator" / "keyring.json").read_text())["keys"]
    assert agg["aggregator"]["stations"] == ["gs-a", "gs-b"]
    for st in ("gs-a", "gs-b"):
        regional = json.loads((fed / "stations" / st / "regional.json").read_text())
        assert regional["signing"]["station_key"] == keyring[st]
        assert regional["regional"]["station"] == st and regional["mqtt"]["username"] == f"regional-{st}"
    # A client may connect to any station with its own credentials.
    at = json.loads((fed / "clients" / layout["clients"][0] / "stations.json").read_text())
    assert sorted(at) == ["gs-a", "gs-b"] and at["gs-b"]["port"] == 9999


def test_relay_stations_pass_updates_up(edgefl, tmp_path):
    code, out, err = edgefl("federation", "init", "orbit", "--clients", "2", "--stations", "gs-a",
                            "--station-mode", "relay", "--out", tmp_path / "fed", "--json")
    assert code == 0, err
    conf = tmp_path / "fed" / "stations" / "gs-a" / "broker" / "mosquitto.conf"
    assert "edgefl/orbit/update/# out 1" in _lines(conf, "topic")
    agg = json.loads((tmp_path / "fed" / "aggregator" / "aggregator.json").read_text())
    assert "stations" not in agg["aggregator"]
    assert not (tmp_path / "fed" / "stations" / "gs-a" / "regional.json").exists()


def test_a_bad_station_is_one_line_exit_2(edgefl, tmp_path):
    for spec in ("gs/a", "gs-a,gs-a", "gs-a@host:99999"):
        code, out, err = edgefl("federation", "init", "orbit", "--clients", "2", "--stations", spec,
                                "--out", tmp_path / "fed")
        assert code == 2 and "Traceback" not in err and "--stations" in err, (spec, err)
        assert not (tmp_path / "fed").exists()
