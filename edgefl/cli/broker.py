"""`edgefl broker`: an embedded MQTT broker (amqtt) for trying a federation without Mosquitto."""

import time

import typer

from edgefl.cli.common import err_console


def command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(1883, help="TCP port."),
    duration: float = typer.Option(0.0, help="Stop after this many seconds (0: until Ctrl-C)."),
):
    """Run an embedded MQTT 3.1.1 broker (clients must set a username; use Mosquitto in production)."""
    from edgefl.broker import EmbeddedBroker

    with EmbeddedBroker(host, port):
        err_console.print(f"[green]MQTT broker listening on {host}:{port}[/green] "
                          "(amqtt; clients must set a username; Ctrl-C stops it)")
        end = time.time() + duration if duration > 0 else None
        try:
            while end is None or time.time() < end:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
