"""Central evaluation on the host: the runtime's ``Evaluator`` contract with torch and a checkpoint.

The aggregator scores each new global model through this when it runs where torch is (``edgefl aggregate
--eval-checkpoint``); on the device it uses the bundle's graph in onnxruntime (``edgefl.runtime.evaluation``).
"""

from edgefl.data import load_npz
from edgefl.errors import EdgeflError
from edgefl.runtime.evaluation import HEAD, Evaluator


class TorchEvaluator(Evaluator):
    """Loads each global model into the checkpoint's architecture and scores it on held-out data.

    Args:
        model: a torch module of the federation's architecture.
        data: held-out ArrayData (x in [0, 1], not normalised).
        preprocessing: the normalisation the model was trained with (the checkpoint's).
    """

    def __init__(self, model, data, preprocessing=None, threads: int = 1):
        import torch

        if len(data) == 0:
            raise EdgeflError("the evaluation data holds no examples — pass a held-out .npz with x and y")
        torch.set_num_threads(threads)
        self.model, self.data, self.preprocessing = model, data, preprocessing

    def evaluate(self, tensors):
        from edgefl.fl.experiment import evaluate_tensors

        if set(tensors) == set(HEAD):  # a head-only federation: the backbone stays the checkpoint's
            tensors = {**head_free(self.model), **tensors}
        return evaluate_tensors(self.model, tensors, self.data, self.preprocessing)


def head_free(model) -> dict:
    """The model's own federated tensors other than the classifier head."""
    from edgefl.fl.torch_trainer import federated_tensors

    return {k: v for k, v in federated_tensors(model).items() if k not in HEAD}


def evaluator_from_checkpoint(checkpoint, data_path, threads: int = 1) -> TorchEvaluator:
    """A TorchEvaluator for a checkpoint's model on an .npz of held-out examples (x, y)."""
    from edgefl.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    return TorchEvaluator(ckpt.model, load_npz(data_path), ckpt.config.get("preprocessing"), threads)
