"""edgefl: train, compress, export and federate models for Jetson-class edge devices.

Importing this package is cheap: torch, onnxruntime and tensorrt are imported where they are used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
