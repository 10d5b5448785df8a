"""Training and evaluation of classifiers on in-memory arrays (CPU-friendly, seeded)."""

import time

import numpy as np

from edgefl.data.arrays import ArrayData, normalize
from edgefl.errors import EdgeflError
from edgefl.progress import NullProgress


MIN_ONE_CYCLE_STEPS = 8


def seed_everything(seed: int):
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def batches(n: int, batch_size: int, rng=None):
    """Index batches over n examples, shuffled when an rng is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


def random_shift(x, max_shift: int, rng):
    """Translate a batch by up to ±max_shift pixels (zero fill): cheap augmentation for small images."""
    import torch.nn.functional as F

    if max_shift <= 0:
        return x
    dx, dy = rng.integers(-max_shift, max_shift + 1, size=2)
    p = max_shift
    padded = F.pad(x, (p, p, p, p))
    h, w = x.shape[-2:]
    return padded[..., p + dy : p + dy + h, p + dx : p + dx + w]


def evaluate(model, data: ArrayData, preprocessing: dict = None, batch_size: int = 500) -> dict:
    """Accuracy and mean cross-entropy of `model` on `data` (eval mode, no gradients)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    correct, loss = 0, 0.0
    x_all = normalize(data.x, preprocessing)
    with torch.no_grad():
        for idx in batches(len(data), batch_size):
            x = torch.from_numpy(x_all[idx])
            y = torch.from_numpy(data.y[idx])
            logits = model(x)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    n = max(len(data), 1)
    return {"accuracy": correct / n, "loss": loss / n, "examples": len(data)}


def train_classifier(model, train: ArrayData, test: ArrayData = None, *, epochs: int = 5,
                     lr: float = 0.1, batch_size: int = 128, weight_decay: float = 5e-4, seed: int = 0,
                     preprocessing: dict = None, augment_shift: int = 2, progress=None,
                     extra_loss=None) -> dict:
    """SGD with Nesterov momentum and a one-cycle schedule; returns metrics (accuracy, loss, time).

    Args:
        extra_loss: optional callable(model, x, y, logits) -> tensor added to the loss (e.g. distillation).
    """
    import torch
    import torch.nn.functional as F

    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise EdgeflError("epochs, batch size and learning rate must be positive"
                          f" (got {epochs}, {batch_size}, {lr})")
    if len(train) == 0:
        raise EdgeflError("the training set is empty — check the data path and the split")
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    progress = progress or NullProgress()
    x_all = torch.from_numpy(normalize(train.x, preprocessing))
    y_all = torch.from_numpy(train.y)
    steps = epochs * -(-len(train) // batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    # one-cycle needs a few steps per phase; very short runs (smoke tests, tiny clients) keep lr constant
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.25)
             if steps >= MIN_ONE_CYCLE_STEPS else torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0))
    task = progress.task("training", steps)
    history, start, scored = [], time.perf_counter(), None
    for epoch in range(epochs):
        model.train()
        run_loss, seen = 0.0, 0
        for idx in batches(len(train), batch_size, rng):
            x, y = random_shift(x_all[idx], augment_shift, rng), y_all[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if extra_loss is not None:
                loss = loss + extra_loss(model, x, y, logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run_loss += loss.item() * len(idx)
            seen += len(idx)
            task.advance(1, epoch=epoch + 1, loss=run_loss / seen)
        row = {"epoch": epoch + 1, "train_loss": run_loss / seen}
        if test is not None:
            scored = evaluate(model, test, preprocessing)
            row.update({f"test_{k}": v for k, v in scored.items() if k != "examples"})
        history.append(row)
        task.update(**{k: v for k, v in row.items() if k.startswith("test_acc")})
    task.close()
    metrics = {"epochs": epochs, "train_seconds": round(time.perf_counter() - start, 2), "history": history}
    if scored is not None:  # the last epoch's score is the final model's: no second pass over the test set
        metrics.update({"test_accuracy": scored["accuracy"], "test_loss": scored["loss"],
                        "test_examples": scored["examples"]})
    return metrics
