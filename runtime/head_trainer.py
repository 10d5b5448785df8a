"""Numpy-only fine-tuning of a classifier head (softmax regression) on engine features.

The TX2 mode: no torch on the board, so the federation shares only the final linear layer
(``classifier.weight`` [C, F], ``classifier.bias`` [C]); the inference engine computes the
penultimate features of the local data once, and each round runs mini-batch SGD on the
cross-entropy of ``features @ W.T + b`` (plus FedProx's proximal term when ``prox_mu`` > 0).
"""

from collections import OrderedDict

import numpy as np

from edgefl.runtime.agent import TrainResult, Trainer
from edgefl.runtime.errors import EdgeRuntimeError

WEIGHT, BIAS = "classifier.weight", "classifier.bias"


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy and its gradient w.r.t. the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = labels.shape[0]
    loss = float(-np.log(np.maximum(p[np.arange(n), labels], 1e-12)).mean())
    p[np.arange(n), labels] -= 1.0
    return loss, p / n


def features_from_engine(engine, x, batch_size=64, input_name="input", output="features"):
    """Run the engine over ``x`` in batches and stack one output (default ``features``)."""
    outs = []
    for i in range(0, len(x), batch_size):
        outs.append(np.asarray(engine.infer({input_name: x[i:i + batch_size]})[output],
                               np.float32).reshape(len(x[i:i + batch_size]), -1))
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


class HeadTrainer(Trainer):
    """Softmax-regression head fine-tuning on fixed features.

    Args:
        features: N x F float32 penultimate activations of the local data.
        labels: N int labels.
        seed: shuffling seed (combined with the round's options seed when given).
    """

    def __init__(self, features, labels, seed=0):
        self.x = np.asarray(features, np.float32)
        self.y = np.asarray(labels, np.int64)
        if self.x.ndim != 2 or self.x.shape[0] != self.y.shape[0] or self.x.shape[0] == 0:
            raise EdgeRuntimeError("head trainer needs N x F features and N labels (N > 0)")
        self.seed = seed
        self.calls = 0

    def train(self, global_model, options):
        if WEIGHT not in global_model or BIAS not in global_model:
            raise EdgeRuntimeError("head mode needs {} and {} in the global model".format(
                WEIGHT, BIAS))
        w = np.array(global_model[WEIGHT], np.float32)
        b = np.array(global_model[BIAS], np.float32)
        if w.shape != (b.shape[0], self.x.shape[1]) or int(self.y.max()) >= b.shape[0]:
            raise EdgeRuntimeError("head shape {} does not fit features {} / labels".format(
                w.shape, self.x.shape))
        w0, b0 = w.copy(), b.copy()
        epochs = int(options.get("epochs", 1))
        lr = float(options.get("lr", 0.1))
        bs = int(options.get("batch_size", 32))
        mu = float(options.get("prox_mu", 0.0))
        rng = np.random.RandomState((self.seed * 7919 + self.calls) % (2 ** 32))
        self.calls += 1
        losses = []
        for _ in range(epochs):
            order = rng.permutation(len(self.y))
            for i in range(0, len(order), bs):
                idx = order[i:i + bs]
                loss, g = softmax_cross_entropy(self.x[idx] @ w.T + b, self.y[idx])
                gw, gb = g.T @ self.x[idx], g.sum(axis=0)
                if mu:
                    gw, gb = gw + mu * (w - w0), gb + mu * (b - b0)
                w -= lr * gw.astype(np.float32)
                b -= lr * gb.astype(np.float32)
                losses.append(loss)
        acc = float(((self.x @ w.T + b).argmax(axis=1) == self.y).mean())
        return TrainResult(OrderedDict([(WEIGHT, w), (BIAS, b)]), len(self.y),
                           {"train_loss": float(np.mean(losses)) if losses else 0.0,
                            "train_accuracy": acc})


class BundleHeadTrainer(Trainer):
    """A :class:`HeadTrainer` on a bundle's features, made when first needed.

    ``prepare()`` opens the engine (importing onnxruntime or TensorRT), computes the features of
    the local data once and closes it; the agent's loop calls it right after connecting, so the
    agent is reachable before the slow part. The manifest is read and verified at once, so a
    broken bundle still stops the agent before it connects.

    Args:
        bundle: bundle directory.
        x, y: local examples (NCHW, raw) and integer labels.
        backend: "auto", "onnxruntime" or "tensorrt".
        seed: the head trainer's shuffling seed.
    """

    def __init__(self, bundle, x, y, backend="auto", seed=0):
        from edgefl.runtime.bundle import read_manifest

        read_manifest(bundle, verify=True)
        self.bundle, self.x, self.y, self.backend, self.seed = bundle, x, y, backend, seed
        self.inner = None

    def prepare(self):
        if self.inner is None:
            from edgefl.runtime.engine import open_engine, preprocess

            engine = open_engine(self.bundle, self.backend, verify=False)
            try:
                feats = features_from_engine(engine, preprocess(self.x, engine.manifest.get(
                    "preprocessing")), input_name=engine.manifest["inputs"][0]["name"])
            finally:
                engine.close()
            self.inner = HeadTrainer(feats, self.y, seed=self.seed)
            self.x = None  # the features are all it needs from now on
        return self.inner

    def train(self, global_model, options):
        return self.prepare().train(global_model, options)
