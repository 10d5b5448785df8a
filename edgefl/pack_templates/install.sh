#!/bin/sh
# Install the edgefl agent pack on this device: the pinned edge stack, the runtime, the model
# bundle, the agent config and a systemd unit. Options are those of install.py (--help).
# Use the system Python: on JetPack the TensorRT bindings exist only for it.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${EDGEFL_PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found — install python3 or set EDGEFL_PYTHON" >&2
    exit 2
fi
exec "$PYTHON" "$HERE/install.py" --python "$(command -v "$PYTHON")" "$@"
