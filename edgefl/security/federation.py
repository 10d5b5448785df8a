"""``edgefl federation init``: everything a federation needs to run over a broker it controls —
CA, broker certificate, per-client certificates and passwords, ACL, mosquitto.conf, per-client
HMAC keys, the aggregator's Ed25519 key pair for signing round announcements, the example count
each client declares (its FedAvg weight is bounded there) and ready-to-copy configs for the
aggregator and each agent.

Layout written under ``out``::

    ca/ca.crt  ca/ca.key
    broker/mosquitto.conf  broker/server.crt  broker/server.key  broker/passwd  broker/acl  broker/data/
    aggregator/aggregator.json  aggregator/keyring.json  aggregator/announce.key
    aggregator/{ca.crt,client.crt,client.key}
    clients/<id>/agent.json  clients/<id>/{ca.crt,client.crt,client.key}
    clients/<id>/stations.json  stations/<station>/...   (with --stations: ``edgefl.security.stations``)

The JSON configs are in the runtime's format (``python -m edgefl.runtime aggregate|agent
--config``): add the aggregator's "model" and each agent's "bundle" and "data". Paths in them are
absolute on this machine; rewrite them when copying a client folder onto its board.

Private keys, passwords and HMAC keys are written with mode 0600. The announcement signing key
(``announce.key``) exists only in the aggregator's folder; every agent config holds its public
half (``signing.aggregator_public_key``) and refuses announcements not signed with it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgefl.errors import EdgeflError
from edgefl.runtime.announce import generate_key_pair
from edgefl.runtime.signing import generate_key
from edgefl.security.acl import acl_text, validate_id
from edgefl.security.mosquitto_conf import BrokerFiles, mosquitto_conf_text
from edgefl.security.passwords import generate_password, password_file_text
from edgefl.security.pki import KeyPair, issue_cert, make_ca
from edgefl.security.stations import QUEUE, Station, central_accounts, central_acl_extra, write_station

AGGREGATOR_ID = "aggregator"
DEFAULT_EXAMPLES = 10000


@dataclass
class FederationLayout:
    """What ``init_federation`` wrote (paths are absolute)."""

    name: str
    out: Path
    clients: list[str]
    host: str
    port: int
    broker_conf: Path
    aggregator_config: Path
    agent_configs: dict[str, Path] = field(default_factory=dict)
    examples: dict[str, int] = field(default_factory=dict)
    public_key: str = ""
    stations: list[Station] = field(default_factory=list)
    station_mode: str = "regional"

    def to_json(self) -> dict:
        return {
            "federation": self.name,
            "out": str(self.out),
            "clients": self.clients,
            "host": self.host,
            "port": self.port,
            "broker_conf": str(self.broker_conf),
            "aggregator_config": str(self.aggregator_config),
            "agent_configs": {k: str(v) for k, v in self.agent_configs.items()},
            "examples": self.examples,
            "aggregator_public_key": self.public_key,
            "stations": [s.to_json() for s in self.stations],
            "station_mode": self.station_mode,
        }


def client_ids(n: int, prefix: str = "client-") -> list[str]:
    """Stable client ids ``client-000``, ``client-001``, ... (those of `edgefl data partition`)."""
    from edgefl.data.partition_file import client_ids as partition_ids

    return [validate_id(cid, "client id") for cid in partition_ids(n, prefix)]


def _write(path: Path, data: bytes | str, secret: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
    os.chmod(path, 0o600 if secret else 0o644)
    return path


def _write_identity(folder: Path, ca: KeyPair, ident: KeyPair) -> dict:
    return {
        "ca_certs": str(_write(folder / "ca.crt", ca.cert_pem)),
        "certfile": str(_write(folder / "client.crt", ident.cert_pem)),
        "keyfile": str(_write(folder / "client.key", ident.key_pem, secret=True)),
    }


def _mqtt_section(host: str, port: int, username: str, password: str, tls: dict) -> dict:
    """The ``mqtt`` section of a runtime config (``edgefl.runtime.transport.paho_mqtt.MqttOptions``)."""
    return {
        "host": host,
        "port": port,
        "username": username,
        "password": password,
        "tls": True,
        **tls,
        "clean_session": False,
    }


def _declared_examples(ids: list[str], examples: int | dict[str, int]) -> dict[str, int]:
    """The example count each client declares: one number for all, or one per client id."""
    declared = examples if isinstance(examples, dict) else dict.fromkeys(ids, examples)
    missing = sorted(set(ids) - set(declared))
    if missing:
        raise EdgeflError(f"no declared example count for {', '.join(missing)} — give every client one")
    for cid, n in declared.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise EdgeflError(f"--examples for {cid} is {n!r}, need a positive integer — pass --examples N")
    return {cid: declared[cid] for cid in ids}


def _check_args(name: str, n_clients: int, out: Path, force: bool) -> None:
    try:
        validate_id(name, "federation name")
    except ValueError as exc:
        raise EdgeflError(f"{exc} — pick a name like 'orbit-1'") from None
    if n_clients < 1:
        raise EdgeflError(f"--clients is {n_clients}, need at least 1 — pass --clients N")
    if out.exists() and any(out.iterdir()) and not force:
        raise EdgeflError(f"{out} is not empty — choose a new --out directory or pass --force")


def init_federation(
    name: str,
    n_clients: int,
    out: Path | str,
    *,
    host: str = "localhost",
    port: int = 8883,
    bind: str = "0.0.0.0",
    extra_hosts: list[str] | None = None,
    prefix: str = "client-",
    require_client_cert: bool = True,
    broker_user: str | None = None,
    examples: int | dict[str, int] = DEFAULT_EXAMPLES,
    stations: list[Station] | None = None,
    station_mode: str = "regional",
    force: bool = False,
) -> FederationLayout:
    """Generate the CA, certificates, credentials, ACL, broker config and client configs.

    Args:
        name: federation name (topic root ``edgefl/{name}``).
        n_clients: number of boards.
        out: output directory (created; must be empty unless ``force``).
        host: broker host name the boards connect to (goes into the server certificate).
        port: TLS port.
        bind: address the broker listens on.
        extra_hosts: more names/IPs for the server certificate.
        prefix: client id prefix.
        require_client_cert: mutual TLS on top of passwords.
        broker_user: user Mosquitto runs as when started by root (it must read the 0600 files);
            None leaves Mosquitto's default (user ``mosquitto``: chown broker/ to it).
        examples: the example count each client declares (one for all, or client id -> count):
            the aggregator rejects an update claiming more (``weight-bound``), the agent never
            claims more. A client may claim up to its declaration, so declare what it holds.
        stations: ground stations (``stations.parse_stations``): each gets a broker bridged to
            this one and, in ``regional`` mode, a regional aggregator (hierarchical FedAvg); in
            ``relay`` mode the stations pass every update up to the root.
        station_mode: ``regional`` or ``relay``.
        force: write into a non-empty directory.

    Returns:
        FederationLayout with the paths written.
    """
    out = Path(out).resolve()
    _check_args(name, n_clients, out, force)
    ids = client_ids(n_clients, prefix)
    declared = _declared_examples(ids, examples)
    ca = make_ca(name)
    _write(out / "ca" / "ca.crt", ca.cert_pem)
    _write(out / "ca" / "ca.key", ca.key_pem, secret=True)

    hosts = list(dict.fromkeys([host, "localhost", "127.0.0.1", *(extra_hosts or [])]))
    server = issue_cert(ca, host, server=True, hosts=hosts)
    broker = out / "broker"
    stations = list(stations or [])
    passwords = {cid: generate_password() for cid in [AGGREGATOR_ID, *ids]}
    bridges = central_accounts(stations)
    clashes = sorted(set(ids) & {s.name for s in stations})
    if clashes:
        raise EdgeflError(f"station {clashes[0]!r} is also a client id — rename the station")
    files = BrokerFiles(
        ca=_write(broker / "ca.crt", ca.cert_pem),
        cert=_write(broker / "server.crt", server.cert_pem),
        key=_write(broker / "server.key", server.key_pem, secret=True),
        passwords=_write(broker / "passwd", password_file_text({**passwords, **bridges}), secret=True),
        acl=_write(broker / "acl", acl_text(name, ids, AGGREGATOR_ID,
                                            central_acl_extra(name, stations, station_mode))),
        persistence_dir=broker / "data",
    )
    files.persistence_dir.mkdir(parents=True, exist_ok=True)
    conf = _write(
        broker / "mosquitto.conf",
        mosquitto_conf_text(
            files, port=port, bind=bind, require_client_cert=require_client_cert, run_as=broker_user,
            max_queued_messages=QUEUE if stations else 1000,
        ),
    )

    keys = {cid: generate_key() for cid in ids}
    regional = bool(stations) and station_mode == "regional"
    station_keys = {s.name: generate_key() for s in stations} if regional else {}
    agg_dir = out / "aggregator"
    agg_tls = _write_identity(agg_dir, ca, issue_cert(ca, AGGREGATOR_ID, server=False))
    keyring = _write(agg_dir / "keyring.json", json.dumps({"keys": {**keys, **station_keys}}, indent=2),
                     secret=True)
    private_key, public_key = generate_key_pair()
    announce_key = _write(agg_dir / "announce.key", private_key + "\n", secret=True)
    # The runtime's config format (``python -m edgefl.runtime aggregate|agent --config``); the
    # aggregator still needs "model" (initial weights), each agent "bundle" and "data".
    agg_cfg = {
        "aggregator": {
            "federation": name,
            "clients": ids,
            "min_clients": max(1, len(ids) // 2),
            "max_examples": max(declared.values()),
            "client_max_examples": declared,
            **({"stations": [s.name for s in stations]} if regional else {}),
        },
        "mqtt": _mqtt_section(host, port, AGGREGATOR_ID, passwords[AGGREGATOR_ID], agg_tls),
        "client_id": AGGREGATOR_ID,
        "signing": {"keyring": str(keyring), "private_key": str(announce_key)},
        "state_path": str(agg_dir / "aggregator_state.safetensors"),
        "output": str(agg_dir / "final.safetensors"),
    }
    layout = FederationLayout(
        name,
        out,
        ids,
        host,
        port,
        conf,
        _write(agg_dir / "aggregator.json", json.dumps(agg_cfg, indent=2), secret=True),
        examples=declared,
        public_key=public_key,
        station_mode=station_mode,
    )
    for st in stations:
        layout.stations.append(write_station(
            out, name, st, ca=ca, central=(host, port), bridge_password=bridges[f"bridge-{st.name}"],
            client_passwords={cid: passwords[cid] for cid in ids}, client_keys=keys, declared=declared,
            public_key=public_key, station_key=station_keys.get(st.name, ""), mode=station_mode,
            write=_write, identity=_write_identity, mqtt_section=_mqtt_section, run_as=broker_user,
            require_client_cert=require_client_cert,
        ))
    for cid in ids:
        cdir = out / "clients" / cid
        tls = _write_identity(cdir, ca, issue_cert(ca, cid, server=False))
        cfg = {
            "federation": name,
            "client_id": cid,
            "mqtt": _mqtt_section(host, port, cid, passwords[cid], tls),
            "signing": {"key": keys[cid], "aggregator_public_key": public_key},
            "max_examples": declared[cid],
            "state_path": "agent_state.safetensors",
        }
        layout.agent_configs[cid] = _write(cdir / "agent.json", json.dumps(cfg, indent=2), secret=True)
        if stations:  # the mqtt section to use at each ground station (same credentials)
            at = {st.name: _mqtt_section(st.host, st.port, cid, passwords[cid], tls) for st in stations}
            _write(cdir / "stations.json", json.dumps(at, indent=2), secret=True)
    return layout
