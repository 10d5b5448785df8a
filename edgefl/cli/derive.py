"""Command-line options derived from the dataclass they configure.

A config dataclass (e.g. the runtime's ``AggregatorConfig``) is the one place its options are written:
`dataclass_options` turns each field into an option of the right type, with the field's default and the
help line from the class docstring's ``Attributes:`` section; a small per-field table adds only what the
dataclass cannot say (a flag name, a range, the registry a name comes from, the unit the command line
uses — ``scale``: the option's value times scale is the field's, ``unit`` its name —, or a ready-made
option for a field that needs its own parser). A new field is a new option.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing

import typer

from edgefl.cli import options, validate


def attribute_docs(cls) -> dict:
    """``{field: help line}`` from the class docstring's ``Attributes:`` section."""
    doc = inspect.getdoc(cls) or ""
    section = doc.split("Attributes:", 1)[1] if "Attributes:" in doc else ""
    docs, current = {}, None
    for line in section.splitlines():
        match = re.match(r"\s{4}(\w+):\s*(.*)", line)
        if match:
            current = match.group(1)
            docs[current] = match.group(2).strip()
        elif current and line.strip():
            docs[current] += " " + line.strip()
    return {k: v[:1].upper() + v[1:] for k, v in docs.items()}


def _default(field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return ...


def field_option(field, hint, help_text: str, spec: dict):
    """(annotation, typer option) for one dataclass field."""
    if "option" in spec:
        return spec.get("annotation", str), spec["option"](help_text, _default(field))
    flag = spec.get("flag", "--" + field.name.replace("_", "-"))
    default = spec.get("default", _default(field))
    if "scale" in spec and isinstance(default, (int, float)):
        default = default / spec["scale"]
    if "unit" in spec:
        help_text = f"{help_text} In {spec['unit']}."
    args = typing.get_args(hint)
    base = next((a for a in args if a is not type(None)), hint) if args and type(None) in args else hint
    origin = typing.get_origin(base) or base
    if spec.get("kind") == "name":
        return str, options.name(default, spec.get("what", field.name), flag, help=help_text)
    if "names" in spec:
        return str, options.choice(default, spec["names"], spec.get("what", field.name), flag, help=help_text)
    if origin is bool:
        return bool, typer.Option(default, f"{flag}/--no-{flag[2:]}", help=help_text)
    if origin is int:
        return int, options.integer(default, flag, low=spec.get("low"), high=spec.get("high"), help=help_text)
    if origin is float:
        return float, options.number(default, flag, low=spec.get("low"), high=spec.get("high"),
                                     low_open=spec.get("low_open", False), help=help_text)
    if origin is dict:
        return list[str], options.key_values(flag, help=f"{help_text} KEY=VALUE, repeatable.")
    if origin is list:
        return str, typer.Option(None, flag, metavar="A,B,...", help=help_text,
                                 parser=options.parser_of(validate.names, spec.get("what", "name")))
    return str, typer.Option(default, flag, help=help_text)


def dataclass_options(cls, specs: dict, skip=()) -> list:
    """``inspect.Parameter`` s (keyword-only) for the fields of ``cls`` not in ``skip``."""
    docs, hints = attribute_docs(cls), typing.get_type_hints(cls)
    params = []
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        annotation, option = field_option(field, hints[field.name], docs.get(field.name, ""),
                                          specs.get(field.name, {}))
        params.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=annotation))
    return params


def field_values(cls, values: dict, specs: dict | None = None) -> dict:
    """The dataclass fields among ``values``: repeatable KEY=VALUE options become dicts, None the default,
    a value in the command line's unit the field's (``scale``)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for field in dataclasses.fields(cls):
        if field.name not in values:
            continue
        value = values[field.name]
        scale = (specs or {}).get(field.name, {}).get("scale")
        if (typing.get_origin(hints[field.name]) or hints[field.name]) is dict:
            base = field.default_factory() if field.default_factory is not dataclasses.MISSING else {}
            value = {**base, **dict(value or [])}  # given keys over the field's default ones
        elif value is None and field.default is dataclasses.MISSING and field.default_factory is not \
                dataclasses.MISSING:
            value = field.default_factory()
        elif scale is not None and value is not None:
            value = value * scale
        out[field.name] = value
    return out


def param(name: str, annotation, option) -> inspect.Parameter:
    """A keyword-only parameter for ``with_signature``: an option written by hand beside the derived ones."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def with_signature(func, params: list):
    """``func`` (taking **kwargs) presented to typer with these parameters."""
    func.__signature__ = inspect.Signature(params)
    return func
