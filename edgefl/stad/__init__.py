"""STAD — Small Target Aware Detector for hyperspectral anomaly detection.

J. Ma, W. Xie, Y. Li, "Exploring hyperspectral anomaly detection with human vision: A small target
aware detector", Neural Networks 184 (2025) 107036 (arXiv 2401.01093); re-implemented without the
official code (majitao-xd/STAD-HAD has no licence).

Modules: ``prep`` (band selection, normalisation), ``rx`` (global RX baseline), ``metrics`` (HAD metrics and
figures), ``stf`` (small target filter), ``teacher`` / ``student`` (networks), ``blobs`` (pseudo-anomalies),
``config`` (StadConfig: defaults and why), ``train`` (teacher training on anomaly-free data),
``distill`` (stage-wise distillation), ``scoregraph`` (forward-only device score), ``detect`` (anomaly
maps), ``pipeline`` (train + save/load checkpoints), ``export`` (ONNX bundle of the device score graph),
``run`` (the library calls behind `edgefl compress stad` and `edgefl detect`). Torch-dependent modules
are imported on use.

Choices against the paper and the official code (details in each module): Transformer teacher as in the
official code (not the paper's "fully connected" one) but with pre-norm layers; 3×3-conv student with
hidden width 16; first 10 bands; global min-max normalisation in both paths; STF with a
pseudo-inverse/ridge and no OpenCV; score = STF-weighted reconstruction error by default (the exact
input-gradient score is available everywhere, including the device graph).
"""
