"""What verifying a signed round announcement costs an agent (runs on the Python 3.6 edge stack).

A real announcement: the runtime's AggregatorCore signs it (Ed25519) and encodes it; the agent
side decodes it and checks it. Timed per backend (pure Python always; ``cryptography`` where it
imports) and per model size — the shipped tiny bundle's head, and float32 models of 0.27M
(ResNet-20) and 1.1M parameters (random values: only their size matters):

- ``signature_ms``: the Ed25519 verification alone (independent of the model size);
- ``problem_ms``: ``AnnouncementVerifier.problem`` — signature plus the model digest (sha256);
- ``on_message_ms``: the whole ``AgentCore.on_message`` (decode, verify, digest, float32 copy);
- ``unsigned_on_message_ms``: the same for an agent without a key, for comparison;
- ``delta_bytes`` and ``delta_on_message_ms``: a coded-delta announcement of the same model
  (``--downlink-codec fedfq``, rate 0.1, wire budget, nearest rounding; a round in which every
  parameter moved) applied by an agent holding the previous model: decode, verify the signature and
  the coded tensors' digest, rebuild the model, check its digest, float32 copy.

On the edge stack (from the repository root, after ``bash .ci/setup``)::

    PYTHONPATH=$PWD/.edge36 .venv36/bin/python bench/announce_verify.py
    .venv/bin/python bench/announce_verify.py          # the host, with cryptography

Writes bench/results/announce_verify_py<major><minor>[_<backends>].json (median of --repeat runs).
"""

import argparse
import json
import os
import platform
import sys
import time
from collections import OrderedDict

import numpy as np

from edgefl.runtime import announce
from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore
from edgefl.runtime.config import load_model_tensors
from edgefl.runtime.wire import decode_message

HERE = os.path.dirname(os.path.abspath(__file__))
TINY_BUNDLE = os.path.join(HERE, "..", "tests", "runtime", "data", "tiny_bundle")
SIZES = OrderedDict([("tiny_bundle_head", 0), ("resnet20_0.27M", 272474), ("1.1M", 1100000)])


def model_of(params):
    if params == 0:
        return load_model_tensors(TINY_BUNDLE)
    rng = np.random.RandomState(0)
    return OrderedDict([("fc.weight", rng.randn(params - 10).astype(np.float32)),
                        ("fc.bias", rng.randn(10).astype(np.float32))])


def median_ms(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


DOWNLINK = {"rate": 0.1, "budget": "wire", "rounding": "nearest"}


def delta_announcement(model, private, backend):
    """(payload, the model it applies to) of a signed FedFQ-coded round-2 announcement."""
    core = AggregatorCore(AggregatorConfig("bench", min_clients=1, downlink_codec="fedfq",
                                           downlink_options=DOWNLINK), model)
    core.announce_signer = announce.AnnouncementSigner(private, backend)
    first = [a for a in core.start(0.0) if getattr(a, "topic", "").endswith("/round")][0]
    helper = AgentCore(AgentConfig("bench", "helper"))
    helper.preload(model)
    job = helper.on_message("edgefl/bench/round", first.payload)
    held = OrderedDict((n, v.copy()) for n, v in helper.model.items())
    rng = np.random.RandomState(1)
    moved = OrderedDict((n, v + (rng.randn(*v.shape) * 1e-2).astype(np.float32))
                        for n, v in job.global_model.items())
    actions = core.on_message(*helper.on_trained(job, TrainResult(moved, 10, {})), now=1.0)
    return [a for a in actions if getattr(a, "topic", "").endswith("/round")][0].payload, held


def measure(backend, params, repeat):
    private, public = announce.generate_key_pair(backend)
    core = AggregatorCore(AggregatorConfig("bench", min_clients=1), model_of(params))
    core.announce_signer = announce.AnnouncementSigner(private, backend)
    payload = core.start(0.0)[0].payload
    msg = decode_message(payload)
    verifier = announce.AnnouncementVerifier(public, backend)
    data = announce.announcement_bytes(msg)
    raw = bytes(bytearray.fromhex(msg.params["signature"]))
    assert verifier.problem(msg) is None

    def on_message(key, announcement=payload, held=None):
        agent = AgentCore(AgentConfig("bench", "a", announce_key=key))
        if key:
            agent.verifier = verifier  # this row's backend, not the default
        if held is not None:
            agent.preload(held)
        assert agent.on_message("edgefl/bench/round", announcement) is not None

    delta, held = delta_announcement(model_of(params), private, backend)

    return OrderedDict([
        ("backend", verifier.backend.name),
        ("model_params", int(sum(v.size for v in msg.tensors.values()))),
        ("payload_bytes", len(payload)),
        ("signature_ms", median_ms(lambda: verifier.backend.verify(verifier.public_key, raw, data),
                                   repeat)),
        ("problem_ms", median_ms(lambda: verifier.problem(msg), repeat)),
        ("on_message_ms", median_ms(lambda: on_message(public), repeat)),
        ("unsigned_on_message_ms", median_ms(lambda: on_message(""), repeat)),
        ("delta_bytes", len(delta)),
        ("delta_on_message_ms", median_ms(lambda: on_message(public, delta, held), repeat)),
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", default=None, help="JSON file (default: bench/results/...)")
    args = parser.parse_args(argv)
    backends = sorted({"python", announce.load_backend().name})  # + cryptography where it works
    rows = OrderedDict()
    for name, params in SIZES.items():
        for backend in backends:
            row = measure(backend, params, args.repeat)
            rows["{}/{}".format(name, backend)] = row
            print("{:<18} {:<12} {:>9} B  signature {:7.2f} ms  verify+digest {:7.2f} ms  "
                  "on_message {:7.2f} ms (unsigned {:7.2f} ms); coded delta {:>8} B "
                  "{:7.2f} ms".format(
                      name, backend, row["payload_bytes"], row["signature_ms"], row["problem_ms"],
                      row["on_message_ms"], row["unsigned_on_message_ms"], row["delta_bytes"],
                      row["delta_on_message_ms"]))
    crypto_version = None
    if "cryptography" in backends:
        import cryptography

        crypto_version = cryptography.__version__
    result = OrderedDict([
        ("python", platform.python_version()), ("numpy", np.__version__),
        ("cryptography", crypto_version), ("machine", platform.machine()),
        ("repeat", args.repeat), ("rows", rows)])
    out = args.out or os.path.join(HERE, "results", "announce_verify_py{}{}{}.json".format(
        sys.version_info[0], sys.version_info[1], "_cryptography" if crypto_version else ""))
    with open(out, "w") as fh:
        json.dump(result, fh, indent=2)
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
