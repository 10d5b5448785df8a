"""Every command's bad inputs through the installed console script: exit 2, one line on stderr naming the
problem (and the fix), no traceback, and nothing left behind — neither at --out nor a staging directory.

One table, run in threads (each case is a validation failure: a second or so of start-up each).
`{f}` is a folder of prepared inputs shared by the cases; each case runs in its own empty working
directory, which must still be empty afterwards (relative --out defaults land there).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

# (argv, text the one error line must contain)
CASES = [
    # train
    ("train --epochs x", "'x' is not a whole number"),
    ("train --epochs 0", "--epochs: 0 is out of range"),
    ("train --batch-size 0", "--batch-size"),
    ("train --lr -1", "--lr: -1 is out of range"),
    ("train --test-fraction 1.5", "--test-fraction"),
    ("train --model resnet99", "unknown model 'resnet99'"),
    ("train --data {f}/missing.npz", "missing.npz"),
    ("train --data {f}/file.txt", "pass an .npz"),
    ("train --model-arg width", "is not key=value"),
    ("train --out /proc/x", "not writable"),
    ("train --out {f}/file.txt", "exists (a file)"),
    ("train --out {f}/full", "pass --force"),
    ("train --out {f}/file.txt/sub", "is a file"),
    ("train --bogus", "No such option: --bogus"),
    # export
    ("export", "Missing argument"),
    ("export {f}/missing", "not found"),
    ("export {f}/file.txt", "is a .txt file — pass a checkpoint directory or an .onnx file"),
    ("export {f}/empty --parity-samples -1", "--parity-samples"),
    ("export {f}/empty --parity-samples 0", "--parity-samples"),
    ("export {f}/empty --profile nope", "unknown device profile 'nope'"),
    ("export {f}/empty --mean 0.5 --std 0.2", "a checkpoint carries its own preprocessing"),
    ("export {f}/empty --precision int4", "unknown precision 'int4'"),
    ("export {f}/empty --format tflite", "unknown format 'tflite'"),
    ("export {f}/empty --batch-size 0", "--batch-size: 0 is out of range"),
    ("export {f}/empty --input-shape 1,28", "--input-shape"),
    ("export {f}/empty --samples {f}/missing.npy", "not found"),
    ("export {f}/empty --out {f}/file.txt", "pass --force"),
    ("export {f}/empty --out out", "config.json"),  # fails after staging: nothing may be left
    ("export {f}/nan_ck --out out", "holds NaN or Inf weights (body.0.weight"),  # not "parity failed"
    # bench (the path is printed literally, not as rich markup)
    ("bench runs/[/x]b", "'runs/[/x]b' not found"),
    ("bench runs/[v2]/b", "'runs/[v2]/b' not found"),
    ("bench my:fire:bundle", "'my:fire:bundle' not found"),
    ("bench {f}/empty --threads -3", "--threads"),
    ("bench {f}/empty --batch-size 0", "--batch-size"),
    ("bench {f}/empty --iterations 0", "--iterations"),
    ("bench {f}/empty --backend cuda", "unknown backend 'cuda'"),
    ("bench {f}/empty", "manifest"),
    # detect
    ("detect {f}/empty nosuchscene", "scene 'nosuchscene'"),
    ("detect {f}/empty abu-urban-2 --gt {f}/missing.npy", "missing.npy' not found"),
    ("detect {f}/empty abu-urban-2 --path bogus", "unknown score path"),
    ("detect {f}/empty {f}/garbage.mat", "garbage.mat"),
    ("detect {f}/empty abu-urban-2 --out {f}/file.txt", "pass --force"),
    # simulate
    ("simulate --codec bogus", "unknown codec 'bogus'"),
    ("simulate --target 5", "--target: 5 is out of range"),
    ("simulate --hours -1", "--hours"),
    ("simulate --clients 0", "--clients"),
    ("simulate --station atlantis", "unknown ground station"),
    ("simulate --station gs:100:0", "latitude"),
    ("simulate --broker bogus-url", "not a broker URL"),
    ("simulate --mode both", "unknown mode 'both'"),
    ("simulate --sensor fog", "unknown sensor effect"),
    ("simulate --features nope", "features 'nope'"),
    ("simulate --schedule {f}/missing.json", "not found"),
    ("simulate --out {f}/full", "pass --force"),
    # demo
    ("demo --compress bogus", "unknown compression 'bogus'"),
    ("demo --hours -1", "--hours"),
    ("demo --broker 'bogus url'", "not a broker URL"),
    ("demo --train-examples 100000", "--train-examples"),
    ("demo --clients 0", "--clients"),
    ("demo --out /proc/x", "not writable"),
    # report
    ("report {f}/file.txt", "is a file, not a directory"),
    ("report {f}/missing", "not found"),
    ("report {f}/badrun", "not valid JSON"),
    ("report {f}/empty", "nothing to report"),
    # pack
    ("pack --bundle {f}/empty --broker mqtt://h:99999", "no valid port"),
    ("pack --bundle {f}/empty --out agent.zip", "name it *.tar.gz"),
    ("pack --bundle {f}/empty --federation a+b", "federation name 'a+b'"),
    ("pack --bundle {f}/empty --client-id sat/#1", "client id 'sat/#1'"),
    ("pack --bundle {f}/missing", "not found"),
    ("pack --bundle {f}/empty --profile nope", "unknown device profile"),
    ("pack --bundle {f}/empty --out a.tar.gz", "manifest"),  # fails after staging
    # federation init
    ("federation init a+b --clients 2 --out fed", "federation name 'a+b'"),
    ("federation init orbit --clients 0 --out fed", "--clients"),
    ("federation init orbit -n 0 --out fed", "--clients"),
    ("federation init orbit --clients 2 --out /proc/x", "not writable"),
    ("federation init orbit --clients 2 --out {f}/file.txt", "pass --force"),
    ("federation init orbit --clients 2 --out fed --port 99999", "not a TCP port"),
    ("federation init orbit --clients 2 --out fed --prefix c/", "client id 'c/0'"),
    # aggregate
    ("aggregate --model {f}/empty --federation a#b", "federation name 'a#b'"),
    ("aggregate --model {f}/empty --deadline -5", "--deadline"),
    ("aggregate --model {f}/pickle.safetensors", "pickle.safetensors"),
    ("aggregate --model {f}/model.safetensors --codec fedfq --codec-option rate=abc", "codec"),
    ("aggregate --model {f}/model.safetensors --codec-option rate", "is not key=value"),
    ("aggregate --model {f}/model.safetensors --codec bogus", "unknown codec 'bogus'"),
    ("aggregate --model {f}/model.safetensors --broker http://x", "not a broker URL"),
    ("aggregate --model {f}/model.safetensors --port 99999", "not a TCP port"),
    ("aggregate --model {f}/model.safetensors --timeout -1", "--timeout"),
    ("aggregate --model {f}/model.safetensors --client-ids a,b+c", "client id 'b+c'"),
    ("aggregate --model {f}/model.safetensors --out {f}/file.txt", "pass --force"),
    ("aggregate --model {f}/model.safetensors --clients-per-round 3 --client-ids a,b", "clients_per_round"),
    ("aggregate", "--model is required"),
    # no broker there: it gives up after --timeout, not after a silent 30 s
    ("aggregate --model {f}/model.safetensors --broker mqtt://127.0.0.1:9 --timeout 1 --quiet",
     "could not connect to the MQTT broker within 1s"),
    ("aggregate --config {f}/typo.json", "unknown key(s) 'mqt'"),
    # agent
    ("agent --bogus", "No such option: --bogus"),
    ("agent --client-id sat/#1", "client id 'sat/#1'"),
    ("agent --client-id a --timeout -1", "--timeout"),
    ("agent --client-id a --partition 0/0", "COUNT must be ≥ 1"),
    ("agent --client-id a --partition 3/2", "INDEX must be in 0..1"),
    ("agent --client-id a --backend cuda", "unknown backend"),
    ("agent --client-id a", "exactly one of --checkpoint"),
    ("agent --client-id a --bundle {f}/empty --checkpoint {f}/empty", "exactly one of --checkpoint"),
    ("agent --bundle {f}/empty", "--client-id is required — or pass --config"),
    ("agent --config {f}/agent.json --client-id b --bundle {f}/empty", "--client-id b disagrees"),
    ("agent --config {f}/agent.json --tls-ca {f}/file.txt --bundle {f}/empty", "the config holds the broker"),
    ("agent --config {f}/typo.json --bundle {f}/empty", "key(s) aggregator, model, mqt are not read here"),
    ("agent --config {f}/file.txt --bundle {f}/empty", "is not valid JSON"),
    ("agent --config {f}/badname.json --bundle {f}/empty", "client_id 'a/#' is not a safe MQTT topic level"),
    ("agent --config {f}/badsigning.json --bundle {f}/empty", "signing must be a JSON object"),
    # broker
    ("broker --timeout -1", "--timeout"),
    ("broker --duration -1", "--timeout"),
    ("broker --port 99999", "not a TCP port"),
    ("broker --host 'bad host'", "not a host name"),
    # compress, profiles
    ("compress stad", "--scenes"),
    ("compress stad --scenes atlantis", "scene 'atlantis'"),
    ("compress stad --scenes hydice --channels 3", "channels=3 is invalid"),
    ("compress stad --scenes hydice --export-profile nope", "unknown device profile 'nope'"),
    ("compress stad --scenes hydice --score x", "unknown score 'x'"),
    ("compress picpq {f}/empty --max-bits 8,a", "--max-bits: '8,a' is not comma-separated whole numbers"),
    ("compress picpq {f}/empty --flops-target 1.5", "--flops-target: 1.5 is out of range"),
    ("compress picpq {f}/empty --tie-break random", "unknown tie break 'random'"),
    ("compress picpq {f}/missing", "not found"),
    ("compress picpq {f}/empty --out {f}/full", "pass --force"),
    ("compress picpq {f}/empty", "config.json"),  # fails after staging
    ("compress ghost {f}/empty --gates half", "unknown gate mode 'half'"),
    ("compress ghost {f}/empty --min-bits 0", "--min-bits"),
    ("compress ghost {f}/empty --batch-size 1", "--batch-size"),
    ("compress ghost {f}/empty --data {f}/missing.npz", "missing.npz"),
    ("compress ghost {f}/empty --out /proc/x", "not writable"),
    ("profiles show jetson-tx9", "unknown device profile"),
    ("data partition --alpha 0", "--alpha"),
    ("data partition --dirichlet -1", "--alpha"),
    ("data partition --prefix a/", "client id 'a/0'"),
    ("data partition --clients 0", "--clients"),
    ("data partition --out {f}/file.txt", "pass --force"),
    ("data partition --data {f}/missing.npz", "missing.npz"),
]


def _nan_checkpoint(path):
    import torch

    from edgefl.checkpoint import save_checkpoint
    from edgefl.data import MNIST_PREPROCESSING
    from edgefl.models import build_model

    model = build_model("small_cnn", in_channels=1, num_classes=10)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    save_checkpoint(path, model, {"model": "small_cnn", "model_args": {"in_channels": 1, "num_classes": 10},
                                  "input_shape": [1, 28, 28], "num_classes": 10,
                                  "preprocessing": MNIST_PREPROCESSING, "data": "mnist"})


def _prepare(root):
    import numpy as np

    from edgefl.runtime.wire import encode_tensors

    (root / "empty").mkdir()
    _nan_checkpoint(root / "nan_ck")
    (root / "full").mkdir()
    (root / "full" / "keep.txt").write_text("earlier results")
    (root / "file.txt").write_text("a file")
    (root / "garbage.mat").write_bytes(b"MATLAB 5.0 garbage" * 20)
    (root / "pickle.safetensors").write_bytes(b"\x80\x04\x95" + bytes(200))
    (root / "model.safetensors").write_bytes(encode_tensors({"w": np.zeros((2, 2), np.float32)}, {}))
    agent = {"federation": "f", "client_id": "a", "mqtt": {"host": "127.0.0.1", "port": 1}}
    (root / "agent.json").write_text(json.dumps(agent))
    (root / "badname.json").write_text(json.dumps({**agent, "client_id": "a/#"}))
    (root / "badsigning.json").write_text(json.dumps({**agent, "signing": "key"}))
    (root / "typo.json").write_text(json.dumps({"aggregator": {"federation": "f"}, "mqt": {}, "model": "m"}))
    (root / "badrun" / "sim").mkdir(parents=True)
    (root / "badrun" / "sim" / "simulation.json").write_text("{not json")


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _check(edgefl, argv, needle, work):
    code, out, err = edgefl(*argv, cwd=work)
    lines = [line for line in err.strip().splitlines() if not line.startswith("note: ")]  # old spellings
    problems = []
    if code != 2:
        problems.append(f"exit {code}")
    if "Traceback" in err or len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines")
    elif needle not in lines[0]:
        problems.append(f"{needle!r} not in the error")
    if out.strip():
        problems.append("stdout not empty")
    left = [p.name for p in work.iterdir()]
    if left:
        problems.append(f"left behind {left}")
    return problems, err.strip()


def test_bad_inputs_fail_cleanly(edgefl, tmp_path):
    import shlex

    fixtures = tmp_path / "f"
    fixtures.mkdir()
    _prepare(fixtures)
    before = _listing(fixtures)
    jobs = []
    for i, (line, needle) in enumerate(CASES):
        argv = [a.replace("{f}", str(fixtures)) for a in shlex.split(line)]
        work = tmp_path / f"case{i}"
        work.mkdir()
        jobs.append((line, argv, needle, work))
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2)) as pool:
        results = list(pool.map(lambda j: (j[0], *_check(edgefl, j[1], j[2], j[3])), jobs))
    failures = [f"{line}: {', '.join(problems)}\n    {err}" for line, problems, err in results if problems]
    assert not failures, "\n".join(failures)
    assert _listing(fixtures) == before, "a case wrote next to its inputs"


@pytest.mark.parametrize("argv", [["train", "--epochs", "x", "--json"], ["report", ".", "--json"]])
def test_json_errors_are_a_document_on_stdout(edgefl, tmp_path, argv):
    code, out, err = edgefl(*argv, cwd=tmp_path)
    doc = json.loads(out)
    assert code == 2 and set(doc) == {"error", "code"} and doc["error"] in err
    assert doc["code"] == ("usage" if argv[0] == "train" else "input")
