"""`edgefl data partition`: write a federation's client partition as a file and show its class counts."""

from pathlib import Path
from typing import Optional

import typer

from edgefl.cli import options, validate
from edgefl.cli.common import console, emit_json, table
from edgefl.cli.staging import check_out, staged

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
    data: str = options.data(),
    no_split: bool = typer.Option(
        False, "--no-split", help="Partition the data as given (nothing held out); agents pass it too."
    ),
    alpha: float = options.number(0.5, "--alpha", low=0, low_open=True,
                                  help="Dirichlet alpha of the label skew (0.5: a common non-IID setting)."),
    clients: int = options.integer(10, "--clients", low=1, high=10000, help="Number of clients."),
    seed: int = options.seed(),
    prefix: str = typer.Option("client-", parser=options.parser_of(validate.client_prefix),
                               help="Client ids are PREFIX0 … PREFIX(N-1), zero-padded."),
    out: Path = options.out(Path("parts.json"), "Partition file to write (JSON)."),
    force: bool = options.force(),
    npz_dir: Optional[Path] = typer.Option(
        None, "--npz-dir", parser=options.parser_of(validate.writable_target), metavar="PATH",
        help="Also write one CLIENT_ID.npz per client into this new folder.",
    ),
    as_json: bool = options.as_json("the class counts"),
):
    """Split the training examples over clients (seeded Dirichlet label skew) into a partition file."""
    from edgefl.data.partition_file import write_client_npz, write_partition

    if npz_dir is not None:
        check_out(npz_dir, force)
    record, train, counts = make_partition(data, no_split, alpha, clients, seed, prefix)
    with staged(out, force, kind="file") as stage:
        write_partition(stage, record)
        files = []
        if npz_dir:
            with staged(npz_dir, force) as npz_stage:
                files = [npz_dir / f.name for f in write_client_npz(npz_stage, record, train)]
    if as_json:
        emit_json({"out": str(out), "npz": [str(f) for f in files], "examples": record["examples"],
                   "split": record["split"], "method": record["method"],
                   "clients": {cid: {"examples": sum(c), "class_counts": c} for cid, c in counts.items()}})
        return
    classes = len(next(iter(counts.values())))
    rows = [(cid, sum(c), *c) for cid, c in counts.items()]
    console.print(table(f"{out}: {record['examples']} examples of {data} over {clients} clients, "
                        f"Dirichlet α={alpha}, seed {seed}",
                        ["client", "examples", *[str(k) for k in range(classes)]], rows))
