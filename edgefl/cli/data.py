"""`edgefl data partition`: write a federation's client partition as a file and show its class counts."""

from pathlib import Path
from typing import Optional

import typer

from edgefl.cli.common import console, emit_json, table
from edgefl.errors import EdgeflError

app = typer.Typer(help="Datasets for federations: client partitions as files.", no_args_is_help=True)


def make_partition(data: str, no_split: bool, alpha: float, clients: int, seed: int, prefix: str):
    """(partition record, the training examples it indexes, class counts per client)."""
    from edgefl.data import load_split
    from edgefl.data.partition_file import class_counts, dirichlet_partition

    split = load_split(data, None, seed, no_split=no_split)
    record = dirichlet_partition(split.train.y, clients, alpha, seed, data=data, split=split.split,
                                 prefix=prefix)
    counts = class_counts(split.train.y, record["clients"].values(), split.train.num_classes)
    return record, split.train, dict(zip(record["clients"], counts))


@app.command("partition")
def partition(
    data: str = typer.Option("mnist", help="'mnist', 'fashion-mnist', an .npz file or a folder."),
    no_split: bool = typer.Option(
        False, "--no-split", help="Partition the data as given (nothing held out); agents pass it too."
    ),
    dirichlet: float = typer.Option(0.5, "--dirichlet", help="Dirichlet alpha of the label skew (> 0)."),
    clients: int = typer.Option(10, min=1, help="Number of clients."),
    seed: int = typer.Option(0, min=0, help="Seed of the split and of the partition."),
    prefix: str = typer.Option("client-", help="Client ids are PREFIX0 … PREFIX(N-1), zero-padded."),
    out: Path = typer.Option(Path("parts.json"), "--out", help="Partition file to write (JSON)."),
    npz_dir: Optional[Path] = typer.Option(
        None, help="Also write one CLIENT_ID.npz per client into this folder."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the class counts as one JSON document."),
):
    """Split the training examples over clients (seeded Dirichlet label skew) into a partition file."""
    from edgefl.data.partition_file import write_client_npz, write_partition

    if not dirichlet > 0:
        raise EdgeflError(f"--dirichlet {dirichlet} must be > 0 (0.5 is a common non-IID setting)")
    if any(c in prefix for c in "/+#"):
        raise EdgeflError(f"--prefix {prefix!r} must not contain '/', '+' or '#' (client ids are MQTT topic "
                          "levels)")
    record, train, counts = make_partition(data, no_split, dirichlet, clients, seed, prefix)
    write_partition(out, record)
    files = write_client_npz(npz_dir, record, train) if npz_dir else []
    if as_json:
        emit_json({"out": str(out), "npz": [str(f) for f in files], "examples": record["examples"],
                   "split": record["split"], "method": record["method"],
                   "clients": {cid: {"examples": sum(c), "class_counts": c} for cid, c in counts.items()}})
        return
    classes = len(next(iter(counts.values())))
    rows = [(cid, sum(c), *c) for cid, c in counts.items()]
    console.print(table(f"{out}: {record['examples']} examples of {data} over {clients} clients, "
                        f"Dirichlet α={dirichlet}, seed {seed}",
                        ["client", "examples", *[str(k) for k in range(classes)]], rows))
