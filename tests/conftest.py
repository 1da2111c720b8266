"""Shared fixtures. Lab tests (marked `lab`) run the real daemons in the local lab.

One lab serves the whole test session: it is rebuilt fresh at the start and removed at the
end, also when tests fail. Test sessions on one machine queue on a lock file, since the
lab's bridge and addresses are fixed. Deselect with `-m "not lab"` on a machine without root.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.control import Lab, namespaces_supported
from tasks.project import REPO_ROOT, load_settings

TEST_LOCK = Path("/run/tp5lab.tests.lock")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A fresh local lab built from the repository's inventory, removed at the end."""
    ok, reason = namespaces_supported()
    if not ok:
        pytest.skip(f"local lab unavailable: {reason}")
    with open(TEST_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        the_lab = Lab(load_settings())
        the_lab.down()
        try:
            the_lab.up()
            yield the_lab
        finally:
            the_lab.down()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Pure tests first (quick failures show first), then lab tests, then the ones that
    rebuild the lab (marked `lab_rebuild`: they leave it removed)."""

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("lab_rebuild"):
            return 2
        return 1 if item.get_closest_marker("lab") else 0

    items.sort(key=rank)


os.environ.setdefault("PYTHONUNBUFFERED", "1")
