"""Per-test pipelines on the session's broker and Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.integration.harness import Pipeline, isolated_settings
from streams.tools.devstack import DevStack


@pytest.fixture
def make_pipeline(stack: DevStack, tmp_path) -> Iterator[Callable[..., Pipeline]]:
    """Build isolated pipelines (unique topics, groups and Redis prefix); closed after the test."""
    made: list[Pipeline] = []

    def make(**overrides) -> Pipeline:
        pipeline = Pipeline(stack, isolated_settings(stack, **overrides), tmp_path)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.close()
