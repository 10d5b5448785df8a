"""A model named by reference: a zoo name, `package.module:factory` or `path/to/file.py:factory`.

`resolve_model_reference` is the one pure decision (text → ModelReference, no import, no file read);
`load_factory` imports it and hashes its source; `build_from_reference` calls the factory and checks
what comes back. Checkpoints record the reference, its arguments and the source's sha256
(`model_source`), and `model_from_config` rebuilds the model from that record, refusing a source
that is missing or changed.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import json
import re
import sys
from pathlib import Path

from edgefl.errors import EdgeflError
from edgefl.models.registry import MODELS, build_zoo_model

FORMS = "a zoo name, package.module:factory or path/to/file.py:factory"
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class ModelReference:
    """How to build a model.

    Attributes:
        text: the reference as given.
        kind: "zoo", "module" or "file".
        target: zoo name, dotted module name, or the file's absolute path.
        factory: the callable's name in that module or file ("" for the zoo).
    """

    text: str
    kind: str
    target: str
    factory: str = ""


def resolve_model_reference(text: str, zoo_names, base: Path = Path(".")) -> ModelReference:
    """Decide what a --model value names (pure: nothing is imported or read).

    Args:
        text: the --model value.
        zoo_names: the zoo's model names.
        base: directory a relative file path is taken from.

    Raises:
        EdgeflError: the text is none of the three forms.
    """
    text = str(text).strip()
    if text in zoo_names:
        return ModelReference(text, "zoo", text)
    left, sep, factory = text.rpartition(":")
    unknown = (
        f"unknown model '{text}' — give a zoo name ({', '.join(sorted(zoo_names))}), "
        "package.module:factory or path/to/file.py:factory"
    )
    if not sep or not left:
        raise EdgeflError(unknown)
    if not _IDENTIFIER.match(factory):
        raise EdgeflError(f"'{text}' is not a model reference: '{factory}' is not a factory name — "
                          f"give {FORMS}")
    if left.endswith(".py"):
        path = Path(left).expanduser()
        return ModelReference(
            text, "file", str((path if path.is_absolute() else Path(base) / path).resolve()), factory
        )
    if _DOTTED.match(left):
        return ModelReference(text, "module", left, factory)
    raise EdgeflError(unknown)


def parse_model_args(pairs) -> dict:
    """Repeated --model-arg key=value: values are JSON scalars (2, 0.5, true, null, "x"), else strings.

    Args:
        pairs: "key=value" strings, or (key, value) pairs whose value the CLI already parsed as JSON
            (a list or object then goes back to its JSON text).
    """
    args = {}
    for pair in pairs or []:
        if isinstance(pair, str):
            key, sep, text = pair.partition("=")
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
        else:
            (key, value), sep = pair, "="
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        if not sep or not _IDENTIFIER.match(key.strip()):
            raise EdgeflError(f"--model-arg {pair!r} must look like key=value (e.g. width=2)")
        args[key.strip()] = value if isinstance(value, (int, float, bool, str, type(None))) else text
    return args


def _sha256(path: Path) -> str:
    from edgefl.runtime.bundle import sha256_file

    return sha256_file(path)


def _exec_file(path: Path, digest: str):
    """Import a model file as a fresh module (its folder on sys.path while it runs, for sibling imports)."""
    source = path.read_text()
    try:
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise EdgeflError(
            f"model file {path.name} has a syntax error at line {exc.lineno} ({exc.msg}) — fix the file"
        ) from None
    name = f"edgefl_user_model_{digest[:16]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's module body: report it in one line, whatever it raised
        raise EdgeflError(
            f"importing model file {path.name} failed ({type(exc).__name__}: {exc}) — fix the file"
        ) from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def _import_module(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise EdgeflError(
            f"cannot import module {name} ({exc}) — install its package or put it on PYTHONPATH"
        ) from None
    except SyntaxError as exc:
        raise EdgeflError(
            f"module {name} has a syntax error in {Path(exc.filename or '?').name} at line "
            f"{exc.lineno} ({exc.msg}) — fix the file"
        ) from None
    except Exception as exc:  # the user's module body
        raise EdgeflError(f"importing module {name} failed ({type(exc).__name__}: {exc}) — fix it") from None


def source_of(ref: ModelReference) -> dict:
    """What a checkpoint records about a module or file reference, read before any of its code runs:
    {"kind", "path", "factory", "sha256"} (+ "module")."""
    if ref.kind == "file":
        path = Path(ref.target)
        if not path.is_file():
            raise EdgeflError(f"model file {path} not found — check the path in --model")
        return {"kind": "file", "path": str(path), "factory": ref.factory, "sha256": _sha256(path)}
    try:
        spec = importlib.util.find_spec(ref.target)
    except (ImportError, ValueError) as exc:
        raise EdgeflError(
            f"cannot find module {ref.target} ({exc}) — install its package or put it on PYTHONPATH"
        ) from None
    if spec is None:
        raise EdgeflError(f"cannot find module {ref.target} — install its package or put it on PYTHONPATH")
    path = Path(spec.origin) if spec.origin and Path(spec.origin).is_file() else None
    return {
        "kind": "module",
        "module": ref.target,
        "path": str(path) if path else None,
        "factory": ref.factory,
        "sha256": _sha256(path) if path else None,
    }


def load_factory(ref: ModelReference, source: dict = None):
    """(factory, source) for a module or file reference (`source` as from `source_of`, computed if None)."""
    source = source or source_of(ref)
    if ref.kind == "file":
        module = _exec_file(Path(source["path"]), source["sha256"])
    else:
        module = _import_module(ref.target)
    factory = getattr(module, ref.factory, None)
    if factory is None:
        defined = sorted(
            n
            for n, v in vars(module).items()
            if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
        )
        raise EdgeflError(
            f"{Path(source['path']).name if ref.kind == 'file' else ref.target} has no factory "
            f"'{ref.factory}' (it defines {', '.join(defined) or 'nothing callable'}) — name one "
            "of them after the colon"
        )
    if not callable(factory):
        raise EdgeflError(
            f"'{ref.factory}' in {ref.text} is a {type(factory).__name__}, not a function or "
            "class — name the factory that builds the model"
        )
    return factory, source


def accepted_arguments(factory, optional: dict, given: dict) -> dict:
    """`given` plus those of `optional` (e.g. in_channels, num_classes) that the factory's signature takes."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {**optional, **given}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    chosen = {k: v for k, v in optional.items() if takes_any or k in params}
    return {**chosen, **given}


def call_factory(factory, args: dict, text: str):
    """Call the factory and check it returned a torch nn.Module."""
    from torch import nn

    try:
        model = factory(**args)
    except TypeError as exc:
        raise EdgeflError(
            f"model '{text}' does not accept these arguments ({exc}) — check --model-arg"
        ) from None
    except Exception as exc:  # the user's factory: one line, whatever it raised
        raise EdgeflError(
            f"model factory '{text}' raised {type(exc).__name__}: {exc} — fix the factory or its "
            "--model-arg values"
        ) from None
    if not isinstance(model, nn.Module):
        raise EdgeflError(
            f"model factory '{text}' returned a {type(model).__name__}, not a torch nn.Module — "
            "return the model"
        )
    return model


def build_model(name: str, **args):
    """Build a model by zoo name or by reference (package.module:factory, path/to/file.py:factory).

    Args:
        name: zoo name or reference.
        args: keyword arguments for the model (e.g. in_channels, num_classes).
    """
    ref = resolve_model_reference(name, MODELS)
    if ref.kind == "zoo":
        return build_zoo_model(name, **args)
    factory, _source = load_factory(ref)
    return call_factory(factory, args, name)


def build_with_source(text: str, optional: dict = None, given: dict = None):
    """Build a model for training: (model, the arguments it was built with, source record or None).

    Args:
        text: zoo name or reference.
        optional: arguments passed only where the factory takes them (in_channels, num_classes).
        given: the user's --model-arg values (always passed).
    """
    optional, given = dict(optional or {}), dict(given or {})
    ref = resolve_model_reference(text, MODELS)
    if ref.kind == "zoo":
        args = {**optional, **given}
        return build_zoo_model(text, **args), args, None
    factory, source = load_factory(ref)
    args = accepted_arguments(factory, optional, given)
    return call_factory(factory, args, text), args, source


def model_from_config(config: dict, where: str = "the checkpoint"):
    """Rebuild a checkpoint's model: from the zoo, or from its recorded source once the sha256 matches."""
    recorded = config.get("model_source")
    if not recorded:
        return build_zoo_model(config["model"], **config["model_args"])
    if recorded["kind"] == "file":
        ref = ModelReference(config["model"], "file", recorded["path"], recorded["factory"])
        if not Path(recorded["path"]).is_file():
            raise EdgeflError(
                f"{where} was trained with model file {recorded['path']} (sha256 "
                f"{recorded['sha256'][:12]}…), which is missing — put that file back, or retrain "
                "with the model you have now"
            )
    else:
        ref = ModelReference(config["model"], "module", recorded["module"], recorded["factory"])
    now = source_of(ref)
    if recorded.get("sha256") and now["sha256"] != recorded["sha256"]:
        raise EdgeflError(
            f"model source {now['path']} changed since {where} was made (recorded sha256 "
            f"{recorded['sha256'][:12]}…, now {(now['sha256'] or 'none')[:12]}…) — restore the file "
            "as it was, or retrain with the changed model"
        )
    factory, _ = load_factory(ref, now)
    return call_factory(factory, config["model_args"], config["model"])
