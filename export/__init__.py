"""edgefl.export: torch → ONNX per device profile, verification, bundles, TensorRT preparation."""
