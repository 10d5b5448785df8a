"""edgefl.runtime: the edge stack (Python 3.6, numpy 1.19, paho-mqtt 1.6 on a Jetson TX2).

Wire format, update codecs, aggregation strategies, the aggregator and agent state machines,
MQTT transports and inference engines. Nothing here imports torch, typer or safetensors at
module level, and nothing imports from the rest of ``edgefl``.
"""

__all__ = ["SCHEMA_VERSION"]

SCHEMA_VERSION = 1
