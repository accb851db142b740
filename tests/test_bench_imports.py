"""The benchmarks import the bot's modules directly; a refactor that breaks them should fail here, not on the
next person who runs `python -m bench`."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench

# The naive bot reads its configuration from the environment at import, as a tutorial's bot does.
MODULES = sorted(module.name for module in pkgutil.iter_modules(bench.__path__) if module.name != "naive_bot")


@pytest.mark.parametrize("name", MODULES)
def test_each_benchmark_module_imports(name: str) -> None:
    assert importlib.import_module(f"bench.{name}").__name__ == f"bench.{name}"
