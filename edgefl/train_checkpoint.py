"""`edgefl train`'s library call: a model (zoo name or reference) trained on data, written as a checkpoint.

Kept apart from ``edgefl.train`` (the loops), which the compression core uses to measure accuracy,
so that the loops never import checkpoint I/O (checkpoint -> compress -> train -> checkpoint was a
circle between packages).
"""

from edgefl.train import seed_everything, train_classifier


def train_to_checkpoint(out, *, model: str = "resnet20", data: str = "mnist", epochs: int = 5,
                        lr: float = 0.05, batch_size: int = 128, test_fraction: float = None, seed: int = 0,
                        model_args: dict = None, progress=None) -> dict:
    """Train a model on a dataset and write a checkpoint; returns its summary.

    Args:
        model: zoo name, package.module:factory or path/to/file.py:factory; the checkpoint records the
            reference, its arguments and its source's sha256, so later commands rebuild it unprompted.
        model_args: keyword arguments for the model (in_channels and num_classes are added from the data
            where the factory takes them).
        test_fraction: None trains on the dataset's official split when it has one (Fashion-MNIST),
            else holds out 0.2; a number holds out that fraction (seeded, stratified). The checkpoint
            records which split it used (config["split"]).
    """
    import torch

    from edgefl.checkpoint import save_checkpoint
    from edgefl.data import load_split
    from edgefl.models.reference import build_with_source

    split = load_split(data, test_fraction, seed)
    train, test, preprocessing = split.train, split.test, split.preprocessing
    num_classes = max(train.num_classes, test.num_classes)
    seed_everything(seed)
    defaults = {"in_channels": int(train.x.shape[1]), "num_classes": num_classes}
    net, args, source = build_with_source(model, defaults, model_args)
    metrics = train_classifier(net, train, test, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                               preprocessing=preprocessing, progress=progress)
    metrics.update({"seed": seed, "test_fraction": split.split.get("test_fraction"),
                    "train_examples": len(train), "torch_threads": torch.get_num_threads()})
    config = {"model": model, "model_args": args, "input_shape": list(train.x.shape[1:]),
              "num_classes": num_classes, "labels": train.labels, "preprocessing": preprocessing,
              "data": str(data), "split": split.split, "metrics": metrics, "model_source": source}
    path = save_checkpoint(out, net, config)
    params = sum(p.numel() for p in net.parameters())
    return {"checkpoint": str(path), "model": model, "parameters": params, **metrics}
