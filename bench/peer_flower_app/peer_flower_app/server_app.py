"""ServerApp: FedAvg over all ten clients every round, central evaluation on the held-out images.

Each central evaluation appends one JSON line (round, its start and end times, accuracy, loss) to the
run config's `rounds-out`, so the bench can tell round time from evaluation time.
"""

import json
import time

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from peer_flower_app.cnn import CNN
from peer_flower_app.task import evaluate, tensors

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    torch.set_num_threads(1)
    cfg = context.run_config
    model = CNN()
    with np.load(cfg["init"], allow_pickle=False) as z:  # the same initial weights as edgefl's
        model.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files})
    x, y = tensors(cfg["test"])

    def central(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        start = time.time()
        model.load_state_dict(arrays.to_torch_state_dict())
        scores = evaluate(model, x, y)
        with open(cfg["rounds-out"], "a") as f:
            f.write(json.dumps({"round": server_round, "start": start, "end": time.time(), **scores}) + "\n")
        return MetricRecord(scores)

    n = int(cfg["clients"])
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=n, min_available_nodes=n)
    strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()), num_rounds=int(cfg["rounds"]),
                   train_config=ConfigRecord({"lr": float(cfg["lr"])}), evaluate_fn=central)
