"""STAD — Small Target Aware Detector for hyperspectral anomaly detection (specs/stad.md).

Modules: ``prep`` (band selection, normalisation), ``rx`` (global RX baseline), ``metrics`` (HAD metrics and
figures), ``stf`` (small target filter), ``teacher`` / ``student`` (networks), ``blobs`` (pseudo-anomalies),
``train`` (teacher training on anomaly-free data), ``distill`` (stage-wise distillation), ``scoregraph``
(forward-only device score), ``detect`` (anomaly maps), ``pipeline`` (train + save/load checkpoints),
``export`` (ONNX bundle of the device score graph). Torch-dependent modules are imported on use.
"""
