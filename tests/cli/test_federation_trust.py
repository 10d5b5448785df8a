"""`edgefl federation init` through the console script: each client's declared example count in
its config and the aggregator's, the announcement key pair with the private half only in the
aggregator's folder, and one line + exit 2 for a bad --examples."""

import json
import stat

from edgefl.runtime.announce import AnnouncementSigner


def test_init_writes_declared_counts_and_the_announcement_key_pair(edgefl, tmp_path):
    code, out, err = edgefl("federation", "init", "orbit", "--clients", "3", "--examples", "600",
                            "--out", tmp_path / "fed", "--json")
    assert code == 0, err
    layout = json.loads(out)
    agg = json.loads((tmp_path / "fed" / "aggregator" / "aggregator.json").read_text())
    clients = layout["clients"]
    assert agg["aggregator"]["client_max_examples"] == dict.fromkeys(clients, 600)
    assert agg["aggregator"]["max_examples"] == 600
    key_file = tmp_path / "fed" / "aggregator" / "announce.key"
    assert agg["signing"]["private_key"] == str(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    public = AnnouncementSigner(key_file.read_text()).public_key.hex()
    assert layout["aggregator_public_key"] == public
    private = key_file.read_text().strip()
    for cid in clients:
        cfg = json.loads((tmp_path / "fed" / "clients" / cid / "agent.json").read_text())
        assert cfg["max_examples"] == 600 and cfg["signing"]["aggregator_public_key"] == public
    outside = [p for p in (tmp_path / "fed").rglob("*") if p.is_file() and p != key_file]
    assert not [p for p in outside if private in p.read_text(errors="replace")]


def test_bad_examples_is_one_line_exit_2(edgefl, tmp_path):
    code, out, err = edgefl("federation", "init", "orbit", "--clients", "2", "--examples", "0",
                            "--out", tmp_path / "fed")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "--examples" in err
