"""Named scales and typed settings.

Every chapter's settings are one frozen dataclass in its code module
(``mdl_utils.codes.<chapter>.Settings``) whose defaults are the paper's values;
the reduced scales are overrides of single fields in that module's ``SCALES``
dict (the shape of minGPT's ``get_default_config``):

* ``paper``: the paper's models and schedules, meant for a GPU (no overrides);
* ``cpu``: a reduced reproduction that a 2-core CPU finishes in minutes per chapter, hours for the prequential CNNs;
* ``smoke``: seconds; tests and CI.

``resolve(Settings, SCALES, scale)`` gives the settings of a scale; a result
records them in its ``params`` and its scale beside its number.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from typing import Any, Callable, Mapping, TypeVar

SCALES = ("smoke", "cpu", "paper")
SCALE_WORDS = {
    "smoke": "smoke test (a few hundred samples, seconds; never a result to quote)",
    "cpu": "reduced scale for a 2-core CPU (smaller or fewer models, fewer epochs than the paper)",
    "paper": "the paper's models and schedules (GPU)",
}

T = TypeVar("T")


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    return scale


def resolve(defaults: type[T], overrides: Mapping[str, Mapping[str, Any]], scale: str) -> T:
    """``defaults()`` (the paper's settings) with the fields that ``overrides[scale]`` changes."""
    check_scale(scale)
    changes = copy.deepcopy(dict(overrides.get(scale, {})))
    names = {f.name for f in dataclasses.fields(defaults)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ValueError(f"{defaults.__module__}.SCALES[{scale!r}] sets unknown fields {unknown}; "
                         f"known: {', '.join(sorted(names))}")
    return dataclasses.replace(defaults(), **changes)



def settings_of(defaults: type[T], overrides: Mapping[str, Mapping[str, Any]]) -> Callable[[str], T]:
    """A chapter's ``settings(scale)``: :func:`resolve` of its Settings class and SCALES table (every code module
    defines ``settings = scales.settings_of(Settings, SCALES)``)."""
    def settings(scale: str) -> T:
        return resolve(defaults, overrides, scale)

    settings.__doc__ = f"The {defaults.__module__} settings at ``scale``: the paper's defaults with SCALES[scale]."
    return settings

def type_errors(settings: Any) -> list[str]:
    """Fields of a settings dataclass whose value does not match its annotated type (empty: all good)."""
    hints = typing.get_type_hints(type(settings))
    return [f"{f.name} = {getattr(settings, f.name)!r} is not {hints[f.name]}"
            for f in dataclasses.fields(settings) if not matches(getattr(settings, f.name), hints[f.name])]


def matches(value: Any, annotation: Any) -> bool:
    """isinstance for the annotations used in settings: int, float, str, bool, None, unions, tuple/list/dict[...]."""
    if annotation is Any:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list):
        if not isinstance(value, origin):
            return False
        item = args[0] if args and (origin is list or args[-1] is Ellipsis) else None
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args))
        return item is None or all(matches(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(matches(k, args[0]) and matches(v, args[1]) for k, v in value.items())
    return isinstance(value, origin or annotation)


def as_params(settings: Any) -> dict[str, Any]:
    """The settings as a JSON-ready dict (tuples become lists), for a result's ``params``. A field added after
    results and labels files were written (``metadata={"omit_default": True}``) appears only when it is not at
    its default, so the params, checkpoints and file recipe hashes of the runs before it stay as they were."""
    d = dataclasses.asdict(settings)
    for f in dataclasses.fields(settings):
        if f.metadata.get("omit_default") and d[f.name] == f.default:
            del d[f.name]
    return json_ready(d)


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
