"""`edgefl federation ...`: set up a federation's broker security (CA, certificates, passwords,
ACL, mosquitto.conf) and per-client agent configs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(
    help="Federation security: CA, certificates, broker credentials and ACL.", no_args_is_help=True
)


@app.callback()
def federation() -> None:
    """Federation security: CA, certificates, broker credentials and ACL."""


@app.command()
def init(
    name: str = typer.Argument(..., help="Federation name (topic root edgefl/NAME)."),
    clients: int = typer.Option(..., "--clients", "-n", help="Number of client boards."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (new or empty)."),
    host: str = typer.Option("localhost", help="Broker host name the boards connect to."),
    port: int = typer.Option(8883, help="Broker TLS port."),
    extra_host: list[str] = typer.Option(
        [], "--extra-host", help="More broker names/IPs for its certificate."
    ),
    prefix: str = typer.Option("client-", help="Client id prefix."),
    no_client_cert: bool = typer.Option(False, "--no-client-cert", help="Passwords only, no mutual TLS."),
    broker_user: str = typer.Option(None, help="User Mosquitto runs as (must read the 0600 key files)."),
    examples: int = typer.Option(
        10000, "--examples", min=1, help="Examples each client declares: its FedAvg weight is capped there."
    ),
    force: bool = typer.Option(False, help="Write into a non-empty directory."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Make the CA, broker and client certificates, passwords, ACL, mosquitto.conf and configs."""
    from edgefl.security.federation import init_federation

    layout = init_federation(
        name,
        clients,
        out,
        host=host,
        port=port,
        extra_hosts=extra_host,
        prefix=prefix,
        require_client_cert=not no_client_cert,
        broker_user=broker_user,
        examples=examples,
        force=force,
    )
    if as_json:
        typer.echo(json.dumps(layout.to_json()))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"federation {layout.name}")
    table.add_column("what")
    table.add_column("path")
    table.add_row("broker config", str(layout.broker_conf))
    table.add_row("aggregator config", str(layout.aggregator_config))
    for cid, path in layout.agent_configs.items():
        table.add_row(f"agent {cid}", str(path))
    console = Console()
    console.print(table)
    console.print(f"start the broker: mosquitto -c {layout.broker_conf}")
    if not broker_user:
        console.print(
            "  (started as root, mosquitto drops to user 'mosquitto': "
            f"chown -R mosquitto {layout.out / 'broker'} or pass --broker-user)"
        )
    console.print('then add "model" to the aggregator config and "bundle" + "data" to each agent config')
