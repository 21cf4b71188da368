"""Shared fixtures: a real Tansu broker and a real redis-server for the whole session.

Nothing is mocked and nothing is skipped: if the broker or Redis cannot start,
the integration tests fail with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.tools.devstack import DevStack, dev_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with dev_stack(tmp_path_factory.mktemp("devstack")) as running:
        yield running
