"""Ground stations for ``edgefl federation init --stations``: one Mosquitto broker per station,
bridged over TLS to the central broker with the station's own credentials, and (regional mode)
a regional aggregator per station.

Layout written under ``out/stations/<station>/``::

    broker/mosquitto.conf  broker/server.crt  broker/server.key  broker/passwd  broker/acl
    broker/data/  broker/uplink.crt  broker/uplink.key  broker/ca.crt
    regional.json  keyring.json  {ca.crt,client.crt,client.key}      (regional mode)

and, for every client, ``clients/<id>/stations.json``: the ``mqtt`` section to use at each
station (a satellite may connect to any of them; its credentials are valid at all).

A station's broker serves the federation's clients with the same passwords and ACL as the
central one (plus its regional aggregator's account) and bridges to the central broker:
announcements and statuses come down, partials and resends (regional) or every update (relay)
go up — see ``acl.bridge_topics`` and ``mosquitto_conf.bridge_conf_text``. The central broker
gets one account per station's bridge, allowed exactly those topics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgefl.errors import EdgeflError
from edgefl.runtime.transport import Topics
from edgefl.security.acl import STATION_MODES, acl_text, bridge_acl_lines, bridge_topics
from edgefl.security.mosquitto_conf import BrokerFiles, Uplink, bridge_conf_text, mosquitto_conf_text
from edgefl.security.passwords import generate_password, password_file_text
from edgefl.security.pki import KeyPair, issue_cert

QUEUE = 100000  # messages a station (or the central broker) holds per session while a link is down


@dataclass
class Station:
    """One ground station: where its broker listens, and (after ``write_station``) its files."""

    name: str
    host: str
    port: int
    broker_conf: Path | None = None
    regional_config: Path | None = None
    mqtt: dict = field(default_factory=dict)  # a client's mqtt section for this station

    def to_json(self) -> dict:
        return {"name": self.name, "host": self.host, "port": self.port,
                "broker_conf": str(self.broker_conf),
                "regional_config": None if self.regional_config is None else str(self.regional_config)}


def stations_from(entries, central_port: int) -> list[Station]:
    """Stations from ``[(name, host or None, port or None)]``: a station without an address
    listens on localhost, port central_port + 1, + 2, ..."""
    return [Station(n, h or "localhost", p or central_port + 1 + i) for i, (n, h, p) in enumerate(entries)]


def central_accounts(stations: list[Station]) -> dict[str, str]:
    """A password for each station's bridge account at the central broker."""
    return {f"bridge-{s.name}": generate_password() for s in stations}


def central_acl_extra(federation: str, stations: list[Station], mode: str) -> list[str]:
    topics = Topics(federation)
    lines: list[str] = []
    for s in stations:
        lines += bridge_acl_lines(topics, f"bridge-{s.name}", s.name, mode)
    return lines


def write_station(
    out: Path,
    federation: str,
    station: Station,
    *,
    ca: KeyPair,
    central: tuple[str, int],
    bridge_password: str,
    client_passwords: dict[str, str],
    client_keys: dict[str, str],
    declared: dict[str, int],
    public_key: str,
    station_key: str,
    mode: str,
    write,
    identity,
    mqtt_section,
    run_as: str | None,
    require_client_cert: bool,
) -> Station:
    """Write one station's broker (with its bridge) and, in regional mode, its aggregator config.

    ``write(path, data, secret=False)``, ``identity(folder, ca, keypair) -> tls dict`` and
    ``mqtt_section(host, port, user, password, tls) -> dict`` are federation.py's writers.
    """
    if mode not in STATION_MODES:
        raise EdgeflError(f"--station-mode {mode!r} — use one of {', '.join(STATION_MODES)}")
    topics = Topics(federation)
    folder = out / "stations" / station.name
    broker = folder / "broker"
    server = issue_cert(ca, station.host, server=True,
                        hosts=list(dict.fromkeys([station.host, "localhost", "127.0.0.1"])))
    uplink_id = issue_cert(ca, f"bridge-{station.name}", server=False)
    regional_user = f"regional-{station.name}"
    passwords = dict(client_passwords)
    if mode == "regional":
        passwords[regional_user] = generate_password()
    extra = [f"user {regional_user}", f"topic readwrite {topics.root}/#", ""] if mode == "regional" else []
    extra += bridge_acl_lines(topics, f"bridge-{station.name}", station.name, mode, local=True)
    files = BrokerFiles(
        ca=write(broker / "ca.crt", ca.cert_pem),
        cert=write(broker / "server.crt", server.cert_pem),
        key=write(broker / "server.key", server.key_pem, secret=True),
        passwords=write(broker / "passwd", password_file_text(passwords), secret=True),
        acl=write(broker / "acl", acl_text(federation, sorted(client_passwords), "aggregator", extra)),
        persistence_dir=broker / "data",
    )
    files.persistence_dir.mkdir(parents=True, exist_ok=True)
    uplink = Uplink(
        f"uplink-{station.name}", central[0], central[1], f"bridge-{station.name}", bridge_password,
        files.ca, write(broker / "uplink.crt", uplink_id.cert_pem),
        write(broker / "uplink.key", uplink_id.key_pem, secret=True),
    )
    ins, outs = bridge_topics(topics, station.name, mode)
    station.broker_conf = write(broker / "mosquitto.conf", mosquitto_conf_text(
        files, port=station.port, bind="0.0.0.0", require_client_cert=require_client_cert,
        max_queued_messages=QUEUE, run_as=run_as, bridge="\n" + bridge_conf_text(uplink, ins, outs)))
    if mode == "regional":
        tls = identity(folder, ca, issue_cert(ca, regional_user, server=False))
        keyring = write(folder / "keyring.json", json.dumps({"keys": client_keys}, indent=2), secret=True)
        cfg = {
            "regional": {"federation": federation, "station": station.name,
                         "max_examples": max(declared.values()), "client_max_examples": declared},
            "mqtt": mqtt_section(station.host, station.port, regional_user, passwords[regional_user], tls),
            "client_id": regional_user,
            "signing": {"keyring": str(keyring), "station_key": station_key,
                        "aggregator_public_key": public_key},
            "state_path": str(folder / "regional_state.safetensors"),
        }
        station.regional_config = write(folder / "regional.json", json.dumps(cfg, indent=2), secret=True)
    return station
