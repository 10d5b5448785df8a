"""First start: build the TensorRT engine for this device if TensorRT is here and no engine exists.

Engines are tied to the GPU and the TensorRT version, so they are built on the device. Without
TensorRT the agent runs the ONNX model with onnxruntime. A failed build is recorded in
bundle/ENGINE_BUILD_FAILED (delete it to retry) and does not stop the agent.
"""

import argparse
import os
import subprocess
import sys

from edgefl.runtime.bundle import read_manifest  # the installed runtime (PYTHONPATH=PREFIX)
from edgefl.runtime.errors import EdgeRuntimeError

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
FAILED_MARKER = "ENGINE_BUILD_FAILED"


def has_engine(bundle):
    return any(name.endswith(ENGINE_SUFFIXES) for name in os.listdir(bundle))


def tensorrt_available():
    try:
        import tensorrt  # noqa: F401
    except Exception:
        return False
    return True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True)
    args = p.parse_args(argv)
    if has_engine(args.bundle):
        print("engine present in %s" % args.bundle)
        return 0
    try:  # the seal only: build-engine (and the agent) check every file's sha256 before use
        manifest = read_manifest(args.bundle, verify=False)
    except EdgeRuntimeError as exc:
        print("the bundle cannot be used (%s); the agent will say so too" % exc)
        return 0
    if not manifest.get("engine"):
        print("the bundle has no TensorRT engine plan (exported --format onnx): using onnxruntime")
        return 0
    if not tensorrt_available():
        print("TensorRT not importable: the agent runs the ONNX model with onnxruntime")
        return 0
    marker = os.path.join(args.bundle, FAILED_MARKER)
    if os.path.exists(marker):
        print("an earlier engine build failed (see %s); using onnxruntime" % marker)
        return 0
    print("building the TensorRT engine (first start)")
    cmd = [sys.executable, "-m", "edgefl.runtime", "build-engine", args.bundle]
    rc = subprocess.call(cmd)
    if rc != 0:
        with open(marker, "w") as fh:
            fh.write("%s exited with %d\n" % (" ".join(cmd), rc))
        print("engine build failed (exit %d); the agent falls back to onnxruntime" % rc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
