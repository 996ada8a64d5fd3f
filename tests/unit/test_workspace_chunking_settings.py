"""A workspace's `settings.chunking` is checked when it is saved, not found unusable by the ingest later."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from oneai.workspaces.models import WorkspaceUpdate


@pytest.mark.parametrize(
    "chunking",
    [
        {"target_tokens": 10},
        {"target_tokens": 400, "overlap_tokens": 300},
        {"target_tokens": "many"},
        {"size": 500},
        [500, 50],
    ],
)
def test_chunking_settings_the_ingest_could_not_use_are_refused(chunking: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        WorkspaceUpdate.model_validate({"settings": {"chunking": chunking}})
    assert "settings.chunking is not usable" in str(refused.value)


@pytest.mark.parametrize(
    "settings", [{"chunking": {"target_tokens": 800, "overlap_tokens": 80}}, {"tone": "calm"}]
)
def test_usable_chunking_settings_and_other_settings_are_kept(settings: dict[str, Any]) -> None:
    assert WorkspaceUpdate.model_validate({"settings": settings}).settings == settings
