"""Data and the training/evaluation loops of the Flower side (numpy .npz files, no pickle)."""

import json

import numpy as np
import torch
import torch.nn.functional as F

from peer_flower_app.cnn import MEAN, STD


def tensors(npz_path: str, index=None):
    """(x normalised N×1×28×28 float32, y int64) from an .npz of uint8 images and labels."""
    with np.load(npz_path, allow_pickle=False) as z:
        x, y = z["x"], z["y"]
    if index is not None:
        x, y = x[index], y[index]
    x = (x.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x[:, None]), torch.from_numpy(y.astype(np.int64))


def client_indices(partition_file: str, client_id: str) -> list:
    with open(partition_file) as f:
        return json.load(f)["clients"][client_id]


def train_epochs(model, x, y, *, epochs: int, batch_size: int, lr: float, momentum: float,
                 seed: int) -> float:
    """SGD with momentum over shuffled batches; returns the mean training loss."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    g = torch.Generator().manual_seed(seed)
    model.train()
    total, seen = 0.0, 0
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(batch_size):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            seen += len(idx)
    return total / max(seen, 1)


@torch.no_grad()
def evaluate(model, x, y, batch_size: int = 500) -> dict:
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(y), batch_size):
        logits = model(x[i:i + batch_size])
        loss += F.cross_entropy(logits, y[i:i + batch_size], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + batch_size]).sum().item()
    return {"accuracy": correct / len(y), "loss": loss / len(y)}
