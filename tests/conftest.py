"""Shared fixtures. Integration tests are skipped with a reason where the host cannot run them."""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    is_root = os.geteuid() == 0
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            if not is_root:
                item.add_marker(pytest.mark.skip(reason="integration tests need root"))


def have(binary: str) -> bool:
    return shutil.which(binary) is not None
