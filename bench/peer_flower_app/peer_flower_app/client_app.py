"""ClientApp: one SuperNode per client; its node config names its data (client-id, train, partition-file)."""

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from peer_flower_app.cnn import CNN
from peer_flower_app.task import client_indices, tensors, train_epochs

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)
    node, run = context.node_config, context.run_config
    x, y = tensors(node["train"], client_indices(node["partition-file"], node["client-id"]))
    model = CNN()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    server_round = int(msg.content["config"]["server-round"])
    loss = train_epochs(model, x, y, epochs=int(run["local-epochs"]), batch_size=int(run["batch-size"]),
                        lr=float(run["lr"]), momentum=float(run["momentum"]),
                        seed=int(run["seed"]) * 100003 + 1009 * int(node["index"]) + server_round)
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()),
                          "metrics": MetricRecord({"train_loss": loss, "num-examples": len(y)})})
    return Message(content=content, reply_to=msg)
