"""Every method the package overrides is marked ``@override`` (a rename upstream fails loudly)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cached_property

import tap_klaviyo_segments


def _function(attribute: object) -> object:
    if isinstance(attribute, property):
        return attribute.fget
    if isinstance(attribute, cached_property):
        return attribute.func
    if isinstance(attribute, (classmethod, staticmethod)):
        return attribute.__func__
    return attribute


def _overrides() -> list[tuple[str, str, bool]]:
    found = []
    for info in pkgutil.iter_modules(tap_klaviyo_segments.__path__):
        module = importlib.import_module(f"tap_klaviyo_segments.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            for name, attribute in vars(cls).items():
                function = _function(attribute)
                if name.startswith("__") or inspect.isclass(function) or not callable(function):
                    continue
                if any(name in vars(base) for base in cls.__mro__[1:] if base is not object):
                    marked = getattr(function, "__override__", False)
                    found.append((f"{module.__name__}.{cls.__name__}", name, marked))
    return found


def test_every_override_is_marked():
    found = _overrides()
    assert len(found) > 30, "the walk must see the package's overrides"
    unmarked = [f"{where}.{name}" for where, name, marked in found if not marked]
    assert unmarked == []
