"""`edgefl broker`: an embedded MQTT broker (amqtt) for trying a federation without Mosquitto."""

import logging
import time

from edgefl.cli import options
from edgefl.cli.common import err_console


def command(
    host: str = options.host("127.0.0.1", "--host", help="Address to listen on."),
    port: int = options.port(1883, "--port"),
    timeout: float = options.number(None, "--timeout", low=0, low_open=True,
                                    help="Stop after this many seconds (default: until Ctrl-C)."),
    quiet: bool = options.quiet(),
):
    """Run an embedded MQTT 3.1.1 broker (clients must set a username; use Mosquitto in production)."""
    from edgefl.broker import EmbeddedBroker

    # amqtt logs a multi-line traceback when it cannot listen; EmbeddedBroker reports that as one line
    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    with EmbeddedBroker(host, port):
        if not quiet:
            err_console.print(f"MQTT broker listening on {host}:{port} (amqtt; clients must set a username; "
                              "Ctrl-C stops it)", style="green")
        end = time.time() + timeout if timeout else None
        try:
            while end is None or time.time() < end:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
