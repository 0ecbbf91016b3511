"""``--set key=value`` for every settings dataclass of the package (generation campaigns, baselines, jobs).

One mechanism: a dotted key names a field (``md.n_frames``, ``slurm.extra_sbatch``, ``l_max``) or an entry of
a dict field (``vasp.incar_static.ENCUT``); the value, given as text on the command line or as a value from a
JSON file, is converted to the field's declared type:

- ``int``: digits only (``1e2`` and ``1.5`` are errors, never a float in an int field); ``float``: any number;
  ``bool``: true/false, yes/no, on/off, 1/0;
- ``X | None``: an empty value, ``none`` or ``null`` clears it;
- lists and tuples: comma-separated items or a JSON list; an empty value gives an empty list (a field's metadata
  may give ``split``, a function from the text to its items, where items contain commas: ``slurm.extra_sbatch``
  splits only before an option, so ``--constraint=a,b`` stays one item);
- dict fields: ``field.NAME=VALUE`` sets one entry (``field.NAME=`` unsets it: None); a field's metadata may give
  ``key`` (normalise NAME, e.g. upper-case INCAR tags) and ``value`` (convert VALUE) functions.

Unknown keys are errors that list the valid ones (with a "did you mean"). The result is a new dataclass built
through its constructor, so each class's own checks (``__post_init__``) run on the final values.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from typing import Any

from .errors import UsageError, did_you_mean

_TRUE = {"1", "true", "yes", "on", "t", ".true."}
_FALSE = {"0", "false", "no", "off", "f", ".false."}
_NONE = {"", "none", "null"}


def parse_assignments(items) -> dict[str, str]:
    """``["a.b=1", "c=x"]`` -> ``{"a.b": "1", "c": "x"}``; an item without ``=`` is an error."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set takes KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = value
    return out


def keys(cls) -> list[str]:
    """Every settable dotted key of the dataclass ``cls`` (dict fields as ``field.NAME``)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            out += [f"{f.name}.{k}" for k in keys(hint)]
        elif _is_dict(hint):
            out.append(f"{f.name}.NAME")
        else:
            out.append(f.name)
    return out


def apply(obj, changes: dict[str, Any], *, label: str = ""):
    """A copy of the dataclass ``obj`` with ``changes`` (dotted keys or nested dicts) applied and checked;
    ``label`` names the settings in errors ("unknown NequIP settings: ...")."""
    nested: dict[str, Any] = {}
    for key, value in _flatten(type(obj), changes).items():
        _insert(nested, key.split("."), value)
    return _apply(obj, nested, "", label)


def _flatten(cls, changes: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted keys, down to dict fields (whose dicts are entries, kept as they are)."""
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    for key, value in changes.items():
        dotted = f"{prefix}{key}"
        head = str(key).split(".")[0]
        hint = hints.get(head)
        if isinstance(value, dict) and "." not in str(key) and hint is not None and dataclasses.is_dataclass(hint):
            out.update(_flatten(hint, value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _insert(tree: dict, parts: list[str], value) -> None:
    head, *rest = parts
    if not rest:
        tree[head] = _Leaf(value)
        return
    child = tree.setdefault(head, {})
    if isinstance(child, _Leaf):
        raise UsageError(f"setting {head!r} is given both as a whole and as {head}.{'.'.join(rest)}; give one")
    _insert(child, rest, value)


@dataclasses.dataclass
class _Leaf:
    value: Any


def _apply(obj, changes: dict, prefix: str, label: str = ""):
    cls = type(obj)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for name, change in changes.items():
        key = f"{prefix}{name}"
        if name not in fields:
            raise UsageError(_unknown(key, cls, prefix, label))
        f, hint, current = fields[name], hints[name], getattr(obj, name)
        if dataclasses.is_dataclass(hint):
            if isinstance(change, _Leaf):
                if not isinstance(change.value, dict):
                    raise UsageError(f"setting {key!r} is a section; set one of its fields, e.g. {key}.{keys(hint)[0]}")
                tree: dict = {}
                for k, v in _flatten(hint, change.value).items():
                    _insert(tree, k.split("."), v)
                change = tree
            values[name] = _apply(current, change, key + ".", label)
        elif _is_dict(hint):
            values[name] = _apply_dict(dict(current), change, key, f)
        elif isinstance(change, _Leaf):
            value = change.value
            split = f.metadata.get("split")
            if split and isinstance(value, str) and not value.strip().startswith("["):
                value = split(value)
            values[name] = coerce(value, hint, key)
        else:
            raise UsageError(f"setting {key!r} takes a value, not sub-keys ({', '.join(k for k in change)})")
    try:
        return dataclasses.replace(obj, **values)
    except TypeError as err:  # a field the constructor does not take (init=False)
        raise UsageError(f"cannot set {prefix or cls.__name__}: {err}") from None


def _apply_dict(current: dict, change, key: str, f: dataclasses.Field) -> dict:
    normalise = f.metadata.get("key", lambda k: k)
    convert = f.metadata.get("value", lambda v, k: v)
    if isinstance(change, _Leaf):  # a whole mapping is merged entry by entry
        if not isinstance(change.value, dict):
            raise UsageError(f"setting {key!r} takes NAME=VALUE entries, e.g. --set {key}.NAME=VALUE")
        change = {k: _Leaf(v) for k, v in change.value.items()}
    for name, leaf in change.items():
        if not isinstance(leaf, _Leaf):
            raise UsageError(f"setting {key}.{name}: expected {key}.NAME=VALUE")
        entry = normalise(name)
        current.pop(entry, None)  # re-inserted last: the order of INCAR tags follows the changes
        value = leaf.value
        empty = value is None or (isinstance(value, str) and not value.strip())  # "none" may be a real value
        # `--set vasp.incar_static.LREAL=` unsets the entry; None is kept so that a saved copy stays unset
        current[entry] = None if empty else convert(value, f"{key}.{entry}")
    return current


def coerce(value, hint, key: str):
    """``value`` (text or a JSON value) as the type ``hint`` of the setting ``key``, or a UsageError."""
    origin, args = _origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if type(None) in args and (value is None or (isinstance(value, str) and value.strip().lower() in _NONE)):
            return None
        errors = []
        for option in sorted(options, key=lambda t: t is str):  # specific types before free text
            try:
                return coerce(value, option, key)
            except UsageError as err:
                errors.append(str(err))
        raise UsageError(f"setting {key!r} takes {' or '.join(_name(o) for o in options)}, got {value!r}")
    if hint is Any:
        return value
    if origin in (list, tuple) or hint in (list, tuple):
        return _sequence(value, hint, key)
    text = value.strip() if isinstance(value, str) else None
    if hint is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise UsageError(f"setting {key!r} takes true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if text is not None:
            try:
                return int(text, 10)
            except ValueError:
                pass
        raise UsageError(f"setting {key!r} takes an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if text is not None:
            try:
                return float(text)
            except ValueError:
                pass
        raise UsageError(f"setting {key!r} takes a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise UsageError(f"setting {key!r} takes text, got {value!r}")
    return value


def _sequence(value, hint, key: str):
    origin = _origin(hint) or hint
    args = typing.get_args(hint)
    item = args[0] if args else Any
    if value is None:
        items = []
    elif isinstance(value, str):
        items = text_items(value, f"setting {key!r}")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise UsageError(f"setting {key!r} takes a list (comma-separated), got {value!r}")
    items = [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(items)]
    return tuple(items) if origin is tuple else items


def text_items(text: str, what: str):
    """The items of a list given as text: a JSON list (``[4, 5]``, values kept as JSON gives them) or
    comma-separated words (``4, 5`` -> ``["4", "5"]``); ``what`` names the setting in the error."""
    text = text.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise UsageError(f"{what}: {text!r} is not a JSON list ({err.msg})") from None
    return [t.strip() for t in text.split(",") if t.strip()]


def split_options(text: str) -> list[str]:
    """Command-line options given as one text: a comma starts a new item only before ``-`` (``--gres=gpu:1,
    --constraint=a|b,c`` -> two items, the second keeping its comma)."""
    return [t.strip() for t in re.split(r",(?=\s*-)", text) if t.strip()]


def _origin(hint):
    return typing.get_origin(hint)


def _is_dict(hint) -> bool:
    return hint is dict or _origin(hint) is dict


def _name(hint) -> str:
    return {int: "an integer", float: "a number", str: "text", bool: "true or false"}.get(hint, str(hint))


def _unknown(key: str, cls, prefix: str, label: str) -> str:
    valid = [f"{prefix}{k}" for k in keys(cls)]
    hint = did_you_mean(key, valid)
    what = f"unknown {label} settings: {key!r}." if label else f"unknown setting {key!r}."
    return f"{what}{hint} Valid settings: {', '.join(valid)}"
