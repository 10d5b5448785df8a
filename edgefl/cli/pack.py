"""`edgefl pack`: the agent tarball to flash onto a device."""

from __future__ import annotations

from pathlib import Path

import typer

from edgefl.cli.common import console, emit_json, key_value_table


def command(
    bundle: Path = typer.Option(..., help="Exported bundle directory (`edgefl export`)."),
    out: Path = typer.Option(Path("agent.tar.gz"), help="Tarball to write (*.tar.gz)."),
    profile: str = typer.Option("jetson-tx2", help="Device profile: fixes the pinned edge stack."),
    broker: str = typer.Option("mqtt://localhost:1883", help="Broker URL the agent connects to."),
    federation: str = typer.Option("edgefl", help="Federation name (topics edgefl/NAME/...)."),
    client_id: str = typer.Option("agent-0", help="Stable client id of this device."),
    data: Path = typer.Option(None, help="Local labelled data (.npz with x, y) for on-device rounds."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
):
    """Pack runtime, bundle, agent config, install script and systemd unit into one tarball."""
    from edgefl.pack import pack_agent

    result = pack_agent(
        profile, bundle, out, broker_url=broker, federation=federation, client_id=client_id, data=data
    )
    if as_json:
        emit_json(result.to_json())
        return
    shown = result.to_json()
    shown["pins"] = " ".join(f"{k}{v}" for k, v in result.pins.items())
    console.print(key_value_table(f"agent pack for {profile}", shown))
    console.print(f"on the device: tar xzf {out.name} && cd edgefl-agent && sudo ./install.sh --enable")
