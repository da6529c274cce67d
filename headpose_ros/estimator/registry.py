"""Backends chosen by name: each registry maps a name to ``"module:Class"``, imported only when created.

Adding a backend is one module and one entry in its stage's registry; a backend whose dependency is missing
fails when it is created, with a message naming the dependency, and never when the package is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from typing import Any

from .errors import BackendUnavailableError, ConfigError


class Registry:
    """Named, lazily imported backends of one pipeline stage."""

    def __init__(self, stage: str, entries: dict[str, str]):
        self.stage = stage
        self._entries = dict(entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def resolve(self, name: str) -> type:
        """The backend class registered as ``name``."""
        if name not in self._entries:
            raise ConfigError(f"unknown {self.stage} backend {name!r}; choose one of {', '.join(self.names())}")
        module_name, _, attr = self._entries[name].partition(":")
        try:
            module = importlib.import_module(module_name, package=__package__)
        except ImportError as exc:
            target = importlib.util.resolve_name(module_name, __package__) if module_name.startswith(".") \
                else module_name
            if exc.name and exc.name.startswith("headpose_ros.") and exc.name != target:
                raise  # another of our modules is broken: a bug, not a missing dependency
            raise BackendUnavailableError(
                f"{self.stage} backend {name!r} needs the Python package {exc.name or exc!s}, which is not installed"
            ) from exc
        try:
            return getattr(module, attr)
        except AttributeError:
            raise ConfigError(
                f"{self.stage} backend {name!r} names {self._entries[name]}, which does not exist") from None

    def with_threads(self, name: str, options: dict[str, Any], threads: int) -> dict[str, Any]:
        """``options`` plus ``num_threads=threads`` when backend ``name`` takes that option and ``options`` does
        not set it (a copy either way)."""
        if "num_threads" in options or "num_threads" not in inspect.signature(self.resolve(name)).parameters:
            return dict(options)
        return {**options, "num_threads": threads}

    def create(self, name: str, **options: Any) -> Any:
        """An instance of backend ``name`` built with ``options``; unknown options raise ConfigError."""
        cls = self.resolve(name)
        try:
            return cls(**options)
        except TypeError as exc:
            raise ConfigError(f"bad options for {self.stage} backend {name!r}: {exc}") from exc
