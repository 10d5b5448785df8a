"""`edgefl federation ...`: set up a federation's broker security (CA, certificates, passwords,
ACL, mosquitto.conf) and per-client agent configs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgefl.cli import options, validate
from edgefl.cli.common import console, table
from edgefl.cli.staging import staged
from edgefl.security.acl import STATION_MODES

app = typer.Typer(
    help="Federation security: CA, certificates, broker credentials and ACL.", no_args_is_help=True
)


@app.callback()
def federation() -> None:
    """Federation security: CA, certificates, broker credentials and ACL."""


@app.command()
def init(
    name: str = typer.Argument(..., parser=options.parser_of(validate.name, "federation name"),
                               metavar="NAME", help="Federation name (topic root edgefl/NAME)."),
    clients: int = options.integer(..., "--clients", low=1, high=10000, help="Number of client boards."),
    out: Path = options.out(..., "Output directory."),
    host: str = options.host("localhost", "--host", help="Broker host name the boards connect to."),
    port: int = options.port(8883, "--port", help="Broker TLS port."),
    extra_host: list[str] = typer.Option(
        [], "--extra-host", parser=options.parser_of(validate.host), help="More broker names/IPs for its "
        "certificate."
    ),
    prefix: str = typer.Option("client-", parser=options.parser_of(validate.client_prefix),
                               help="Client id prefix."),
    no_client_cert: bool = typer.Option(False, "--no-client-cert", help="Passwords only, no mutual TLS."),
    broker_user: str = typer.Option(None, help="User Mosquitto runs as (must read the 0600 key files)."),
    examples: int = options.integer(
        10000, "--examples", low=1, help="Examples each client declares: its FedAvg weight is capped there."
    ),
    stations: str = typer.Option(
        "", "--stations", parser=options.parser_of(validate.ground_stations), metavar="NAME[@HOST:PORT],...",
        help="Ground stations: a broker each, bridged to this one over TLS (default address localhost, "
        "port --port + 1, + 2, ...)."
    ),
    station_mode: str = options.choice(
        "regional", STATION_MODES, "station mode", "--station-mode",
        help="regional: each station folds its clients' updates and sends partial sums (hierarchical "
        "FedAvg); relay: stations pass every update up."
    ),
    force: bool = options.force(),
    as_json: bool = options.as_json(),
) -> None:
    """Make the CA, broker and client certificates, passwords, ACL, mosquitto.conf and configs."""
    from edgefl.security.federation import init_federation
    from edgefl.security.stations import stations_from

    with staged(out, force, in_place=True) as target:
        layout = init_federation(
            name,
            clients,
            target,
            host=host,
            port=port,
            extra_hosts=extra_host,
            prefix=prefix,
            require_client_cert=not no_client_cert,
            broker_user=broker_user,
            examples=examples,
            stations=stations_from(stations or [], port),
            station_mode=station_mode,
        )
    if as_json:
        typer.echo(json.dumps(layout.to_json()))
        return
    rows = [("broker config", layout.broker_conf), ("aggregator config", layout.aggregator_config)]
    for st in layout.stations:
        rows.append((f"station {st.name} broker ({st.host}:{st.port})", st.broker_conf))
        if st.regional_config:
            rows.append((f"station {st.name} regional aggregator", st.regional_config))
    rows += [(f"agent {cid}", path) for cid, path in layout.agent_configs.items()]
    console.print(table(f"federation {layout.name}", ["what", "path"], rows))
    console.print(f"start the broker: mosquitto -c {layout.broker_conf}")
    if not broker_user:
        console.print(
            "  (started as root, mosquitto drops to user 'mosquitto': "
            f"chown -R mosquitto {layout.out / 'broker'} or pass --broker-user)"
        )
    console.print('then add "model" to the aggregator config and "bundle" + "data" to each agent config')
