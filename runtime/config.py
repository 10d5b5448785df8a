"""JSON configs for ``python -m edgefl.runtime agent|aggregate`` and the pieces they build.

Aggregator config::

    {"aggregator": {...AggregatorConfig fields...}, "mqtt": {...MqttOptions fields...},
     "model": "init.safetensors | checkpoint dir | bundle dir (its head)",
     "state_path": "agg_state.safetensors", "output": "final.safetensors",
     "max_payload": 1048576, "timeout_s": null, "client_id": "aggregator-<federation>",
     "commit_interval_s": 0 (> 0: save the state once per that many seconds, statuses held
     until then, instead of after every update)}

Regional aggregator config (one per ground station, hierarchical FedAvg)::

    {"regional": {...RegionalConfig fields...}, "mqtt": {...the station broker...},
     "client_id": "regional-<station>", "state_path": "regional_state.safetensors",
     "signing": {"keyring": "keyring.json (the clients' keys)", "station_key": "HEX",
                 "aggregator_public_key": "HEX"}, "max_payload": 1048576, "timeout_s": null}

Agent config (head mode, the edge path; the host CLI adds a torch trainer)::

    {"federation": "demo", "client_id": "sat-1", "mqtt": {...},
     "bundle": "bundle dir", "backend": "auto", "data": "local.npz (x, y; no pickle)",
     "model": "the initial model this client holds (default: the bundle's head); optional",
     "state_path": "agent_state.safetensors", "max_payload": 1048576, "max_rounds": 0,
     "timeout_s": null, "seed": 0, "resend_s": 60}
"""

import json
import os
from collections import OrderedDict

import numpy as np

from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.bundle import read_checkpoint_config, read_manifest
from edgefl.runtime.persist import atomic_write
from edgefl.runtime.transport.chunking import ChunkingTransport
from edgefl.runtime.transport.paho_mqtt import MqttOptions, PahoTransport
from edgefl.runtime.wire import decode_tensors, encode_tensors

HEAD_NAMES = {"weight": "classifier.weight", "bias": "classifier.bias"}


def load_json(path):
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (IOError, OSError) as exc:
        raise EdgeRuntimeError("cannot read config {} ({}) — check the path".format(path, exc))
    except ValueError as exc:
        raise EdgeRuntimeError("config {} is not valid JSON ({})".format(path, exc))
    if not isinstance(cfg, dict):
        raise EdgeRuntimeError("config {} must be a JSON object".format(path))
    return cfg


AGGREGATE_KEYS = ("aggregator", "mqtt", "model", "state_path", "output", "max_payload", "timeout_s",
                  "client_id", "signing", "evaluation", "metrics_path", "commit_interval_s")
REGIONAL_KEYS = ("regional", "mqtt", "client_id", "state_path", "signing", "max_payload",
                 "timeout_s", "commit_interval_s")
AGENT_KEYS = ("federation", "client_id", "mqtt", "bundle", "backend", "data", "state_path", "max_payload",
              "max_rounds", "timeout_s", "seed", "signing", "max_examples", "model", "resend_s")


def check_keys(cfg, known, what):
    """Refuse keys a config does not use (a typo would otherwise be ignored); ``_``-keys are comments."""
    unknown = sorted(k for k in cfg if k not in known and not str(k).startswith("_"))
    if unknown:
        raise EdgeRuntimeError("{} config: unknown key(s) {} — the keys are {}".format(
            what, ", ".join(map(repr, unknown)), ", ".join(known)))
    return cfg


def build_dataclass(cls, values, what):
    """``cls(**values)`` with a clear error naming unknown keys."""
    values = dict(values or {})
    try:
        return cls(**values)
    except TypeError as exc:
        raise EdgeRuntimeError("bad {} section: {} — see {} fields".format(what, exc,
                                                                          cls.__name__))


def make_transport(client_id, mqtt=None, max_payload=1024 * 1024, will_topic=None,
                   max_message=None, max_queued_bytes=0):
    """A chunking paho transport for ``client_id`` from an ``mqtt`` config section.

    ``will_topic``: the broker publishes ``offline`` there (retained) if the client vanishes.
    ``max_message``: the largest chunked message reassembled (an aggregator passes its
    ``max_update_bytes``); the chunking layer's default when None. ``max_queued_bytes``: bytes
    received and not yet handled before the broker is made to hold the rest (0: no bound).
    """
    opts = mqtt if isinstance(mqtt, MqttOptions) else build_dataclass(MqttOptions, mqtt, "mqtt")
    limits = {} if max_message is None else {"max_message": int(max_message)}
    return ChunkingTransport(PahoTransport(client_id, opts, will_topic=will_topic,
                                           will_payload=b"offline",
                                           max_queued_bytes=int(max_queued_bytes)),
                             max_payload=int(max_payload), **limits)


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    tensors, _ = decode_tensors(blob)
    return tensors


def load_model_tensors(path):
    """Float tensors of a federation's initial model.

    ``path`` is a .safetensors file, a checkpoint directory (model.safetensors) or a bundle
    directory (head.safetensors, renamed to classifier.weight / classifier.bias). Integer
    buffers (e.g. BatchNorm counters) are not federated and are left out.
    """
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "model.safetensors")):
            verify_checkpoint_files(path)
            path = os.path.join(path, "model.safetensors")
        elif os.path.isfile(os.path.join(path, "head.safetensors")):
            read_manifest(path, verify=True)  # every bundle file against its sha256 first
            tensors = read_safetensors(os.path.join(path, "head.safetensors"))
            return OrderedDict((HEAD_NAMES.get(n, n), np.array(v, np.float32))
                               for n, v in sorted(tensors.items()))
        else:
            raise EdgeRuntimeError("{} holds neither model.safetensors nor head.safetensors — "
                                   "pass a checkpoint, a bundle or a .safetensors file".format(path))
    if not os.path.isfile(path):
        raise EdgeRuntimeError("model {} not found — pass a checkpoint, bundle or .safetensors"
                               .format(path))
    tensors = read_safetensors(path)
    return OrderedDict((n, np.array(v, np.float32)) for n, v in sorted(tensors.items())
                       if v.dtype.kind == "f")


def verify_checkpoint_files(path):
    """Check a checkpoint directory's config.json and files against their sha256."""
    if "model.safetensors" not in read_checkpoint_config(path, verify=True)["files"]:
        raise EdgeRuntimeError("checkpoint {}: config.json records no sha256 for model.safetensors "
                               "— re-create the checkpoint".format(path))


def save_model_tensors(path, tensors, metadata=None):
    atomic_write(path, encode_tensors(tensors, metadata or {}))


def load_npz_data(path):
    """(x, y) from an .npz without pickle."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["x"]), np.asarray(z["y"]).astype(np.int64)
    except (IOError, OSError, KeyError, ValueError) as exc:
        raise EdgeRuntimeError("cannot load local data {} ({}) — it must be an .npz with x and y"
                               .format(path, exc))
