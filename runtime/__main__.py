"""On the device: ``python -m edgefl.runtime agent|aggregate|regional|build-engine --config FILE.json``.

Only the edge stack is needed (numpy, paho-mqtt, onnxruntime or TensorRT). ``build-engine``
is dispatched to ``edgefl.runtime.trt_build:main`` (imported only when asked for).
"""

import argparse
import importlib
import json
import sys

from edgefl.runtime.errors import EdgeRuntimeError


def build_engine_main(argv):
    return importlib.import_module("edgefl.runtime.trt_build").main(argv)


COMMANDS = {"agent": "run_agent_from_config", "aggregate": "run_aggregator_from_config",
            "regional": "run_regional_from_config"}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "build-engine":
        return build_engine_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m edgefl.runtime")
    parser.add_argument("command", choices=sorted(COMMANDS) + ["build-engine"])
    parser.add_argument("--config", required=True, help="JSON config file")
    args = parser.parse_args(argv)
    from edgefl.runtime.config import load_json

    try:
        from edgefl.runtime import service

        result = getattr(service, COMMANDS[args.command])(load_json(args.config))
    except EdgeRuntimeError as exc:
        sys.stderr.write("error: {}\n".format(exc))
        return 2
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
