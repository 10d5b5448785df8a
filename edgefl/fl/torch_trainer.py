"""Full-model local training with torch, behind the runtime's ``Trainer`` protocol."""

from collections import OrderedDict

import numpy as np

from edgefl.data.arrays import ArrayData, normalize
from edgefl.errors import EdgeflError
from edgefl.runtime.agent import TrainResult, Trainer


def federated_tensors(model) -> "OrderedDict[str, np.ndarray]":
    """The model's floating-point state (parameters and float buffers) as float32 numpy, by name.

    Integer buffers (e.g. BatchNorm's num_batches_tracked) are local and not federated.
    """
    return OrderedDict((k, v.detach().cpu().numpy().astype(np.float32).copy())
                       for k, v in sorted(model.state_dict().items()) if v.is_floating_point())


def load_federated_tensors(model, tensors) -> None:
    """Copy federated tensors into the model (names and shapes must match)."""
    import torch

    state = model.state_dict()
    missing = [k for k, v in state.items() if v.is_floating_point() and k not in tensors]
    unknown = [k for k in tensors if k not in state]
    if missing or unknown:
        raise EdgeflError(f"global model does not fit the local model (missing {missing[:3]}, unknown "
                          f"{unknown[:3]}) — start the federation from this model's checkpoint")
    with torch.no_grad():
        for k, v in tensors.items():
            if tuple(state[k].shape) != tuple(v.shape):
                raise EdgeflError(f"global tensor {k} has shape {tuple(v.shape)}, the local model "
                                  f"{tuple(state[k].shape)} — use the same architecture")
            state[k].copy_(torch.tensor(np.asarray(v)))  # a copy: wire arrays are read-only


class TorchTrainer(Trainer):
    """Local SGD on the agent's data.

    Round options (from the aggregator's ``train`` dict): ``epochs`` (1), ``lr`` (0.05),
    ``batch_size`` (32), ``momentum`` (0.0), ``weight_decay`` (0.0), ``prox_mu`` (0.0: FedAvg;
    > 0: FedProx's proximal term).

    Args:
        model: a torch module (trained in place; its state is overwritten from the global model
            at the start of each round).
        data: the local examples (x in [0, 1], not normalised).
        preprocessing: normalisation applied before training (the checkpoint's).
        threads: torch intra-op threads (1 on shared machines and boards).
    """

    def __init__(self, model, data: ArrayData, preprocessing: dict = None, seed: int = 0, threads: int = 1):
        import torch

        if len(data) == 0:
            raise EdgeflError("this agent has no local examples — give it data")
        torch.set_num_threads(threads)
        self.model = model
        self.x = torch.from_numpy(normalize(data.x, preprocessing))
        self.y = torch.from_numpy(np.asarray(data.y, np.int64))
        self.seed = seed
        self.rounds = 0

    @classmethod
    def from_checkpoint(cls, path, data: ArrayData, seed: int = 0, threads: int = 1) -> "TorchTrainer":
        from edgefl.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        return cls(ckpt.model, data, ckpt.config.get("preprocessing"), seed=seed, threads=threads)

    def train(self, global_model, options):
        import torch
        import torch.nn.functional as F

        load_federated_tensors(self.model, global_model)
        epochs = int(options.get("epochs", 1))
        bs = int(options.get("batch_size", 32))
        mu = float(options.get("prox_mu", 0.0))
        opt = torch.optim.SGD(self.model.parameters(), lr=float(options.get("lr", 0.05)),
                              momentum=float(options.get("momentum", 0.0)),
                              weight_decay=float(options.get("weight_decay", 0.0)))
        anchor = [p.detach().clone() for p in self.model.parameters()] if mu else None
        rng = np.random.default_rng(self.seed * 100003 + self.rounds)
        self.rounds += 1
        self.model.train()
        total, seen, correct = 0.0, 0, 0
        for _ in range(epochs):
            order = rng.permutation(len(self.y))
            for idx in (order[i:i + bs] for i in range(0, len(order), bs)):  # batch_size each, the last less
                x, y = self.x[idx], self.y[idx]
                logits = self.model(x)
                loss = F.cross_entropy(logits, y)
                if mu:
                    loss = loss + 0.5 * mu * sum(((p - a) ** 2).sum() for p, a in
                                                 zip(self.model.parameters(), anchor))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                seen += len(idx)
                correct += (logits.argmax(1) == y).sum().item()
        self.model.eval()
        return TrainResult(federated_tensors(self.model), len(self.y),
                           {"train_loss": total / max(seen, 1), "train_accuracy": correct / max(seen, 1)})
