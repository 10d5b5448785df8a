"""`edgefl pack`: the agent tarball to flash onto a device."""

from __future__ import annotations

from pathlib import Path

import typer

from edgefl.cli import options, validate
from edgefl.cli.common import console, emit_json, key_value_table
from edgefl.cli.staging import staged


def command(
    bundle: Path = options.existing(..., "dir", "--bundle",
                                    help="Exported bundle directory (`edgefl export`)."),
    out: Path = typer.Option(Path("runs/agent.tar.gz"), "--out", "-o", parser=options.parser_of(
        validate.tarball), metavar="PATH", help="Tarball to write (*.tar.gz); new unless --force."),
    force: bool = options.force(),
    profile: str = options.profile(),
    broker: str = options.broker("mqtt://localhost:1883", help="Broker URL the agent connects to."),
    federation: str = options.federation(),
    client_id: str = options.name("agent-0", "client id", "--client-id",
                                  help="Stable client id of this device."),
    data: Path = options.existing(None, "file", "--data",
                                  help="Local labelled data (.npz with x, y) for on-device rounds."),
    as_json: bool = options.as_json(),
):
    """Pack runtime, bundle, agent config, install script and systemd unit into one tarball."""
    from edgefl.pack import pack_agent

    with staged(out, force, kind="file") as stage:
        result = pack_agent(
            profile, bundle, stage, broker_url=broker, federation=federation, client_id=client_id, data=data
        )
    shown = result.to_json()
    shown["path"] = str(out)
    if as_json:
        emit_json(shown)
        return
    shown["pins"] = " ".join(f"{k}{v}" for k, v in result.pins.items())
    console.print(key_value_table(f"agent pack for {profile}", shown))
    console.print(f"on the device: tar xzf {out.name} && cd edgefl-agent && sudo ./install.sh --enable")
