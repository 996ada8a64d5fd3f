"""Pieces of the workspace service that need no database: slugs from names, the tiers' workspace limits
and their setting, which token claims make an email verified."""

from __future__ import annotations

import pytest

from oneai.config import Settings
from oneai.quota.tiers import TIER_NAMES, WORKSPACE_LIMITS
from oneai.workspaces.limits import WorkspaceLimitsSettingError, limit_by_tier, workspace_limits
from oneai.workspaces.service import slug_base, verified_email


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Acme Support", "acme-support"),
        ("  Café — Zürich (EU) ", "cafe-zurich-eu"),
        ("R&D / 2026", "r-d-2026"),
        ("日本語", "workspace"),
        ("---", "workspace"),
        ("Personal stuff", "workspace-personal-stuff"),  # `personal-` is the personal workspaces' own
        ("Personal", "personal"),
        ("x" * 150, "x" * 80),
    ],
)
def test_a_slug_is_ascii_letters_and_digits_joined_by_single_hyphens(name: str, slug: str) -> None:
    assert slug_base(name) == slug


def test_the_default_limits_are_the_contracts_and_the_setting_changes_only_what_it_names() -> None:
    assert set(WORKSPACE_LIMITS) == set(TIER_NAMES)
    assert limit_by_tier(Settings(), "workspaces_owned") == {"free": 1, "pro": 5, "enterprise": 50}
    assert limit_by_tier(Settings(), "members") == {"free": 2, "pro": 10, "enterprise": 100}
    changed = Settings(ONEAI_WORKSPACE_LIMITS='{"free": {"members": 3}}')
    assert workspace_limits(changed, "free").members == 3
    assert workspace_limits(changed, "free").chatbots == WORKSPACE_LIMITS["free"].chatbots
    assert workspace_limits(changed, "pro") == WORKSPACE_LIMITS["pro"]


@pytest.mark.parametrize(
    "setting",
    ["not json", "[]", '{"gold": {"members": 3}}', '{"free": {"seats": 3}}', '{"free": {"members": "many"}}'],
)
def test_a_setting_that_does_not_name_tiers_and_limits_is_an_error(setting: str) -> None:
    with pytest.raises(WorkspaceLimitsSettingError):
        workspace_limits(Settings(ONEAI_WORKSPACE_LIMITS=setting), "free")


@pytest.mark.parametrize(
    ("claims", "email"),
    [
        ({"email": "Ana@Example.test", "user_metadata": {"email_verified": True}}, "ana@example.test"),
        ({"email": "ana@example.test", "email_verified": True}, "ana@example.test"),
        ({"email": "ana@example.test", "user_metadata": {"email_verified": False}}, None),
        ({"email": "ana@example.test", "user_metadata": {"email_verified": "true"}}, None),
        ({"email": "ana@example.test", "user_metadata": {}}, None),
        ({"email": "", "email_verified": True}, None),
        ({"user_metadata": {"email_verified": True}}, None),
    ],
)
def test_only_a_confirmed_email_of_the_token_is_verified(claims: dict[str, object], email: str | None) -> None:
    assert verified_email(claims) == email
