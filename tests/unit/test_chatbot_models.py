"""The chatbots' bodies (issue 25): what a configuration may hold, checked before the database is asked;
the widget's origins normalized; the copy's name; and the templates file the repository ships, loaded and
validated as the route loads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from oneai.chatbots.models import (
    USE_CASES,
    ChatbotCreate,
    ChatbotUpdate,
    Widget,
    max_tokens_limit,
    normalized_origin,
)
from oneai.chatbots.service import TEMPLATES_PATH, TemplatesFileError, copy_name, load_templates, templates

VALID: dict[str, Any] = {"name": "Helper", "model": "openai/gpt-4o-mini"}


def refused_fields(body: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as refused:
        ChatbotCreate.model_validate({**VALID, **body})
    return [".".join(str(p) for p in e["loc"]) for e in refused.value.errors()]


def test_the_defaults_of_a_minimal_body() -> None:
    bot = ChatbotCreate.model_validate(VALID)
    assert (bot.use_case, bot.temperature, bot.max_tokens, bot.status) == ("other", 0.3, 1024, "draft")
    assert (bot.retrieval.top_k, bot.retrieval.min_score, bot.fallback.mode) == (5, 0.3, "answer")
    assert bot.widget.position == "bottom-right" and bot.widget.allowed_origins == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"description": "x" * 1001}, "description"),
        ({"use_case": "gossip"}, "use_case"),
        ({"temperature": 2.01}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 32001, "model": "anthropic/claude-sonnet-4"}, "max_tokens"),
        ({"max_tokens": 16385}, "max_tokens"),  # gpt-4o-mini writes at most 16384
        ({"max_tokens": "100"}, "max_tokens"),
        ({"system_prompt": "x" * 20001}, "system_prompt"),
        ({"retrieval": {"top_k": 21}}, "retrieval.top_k"),
        ({"retrieval": {"top_k": 0}}, "retrieval.top_k"),
        ({"retrieval": {"min_score": 1.5}}, "retrieval.min_score"),
        ({"fallback": {"mode": "message"}}, "fallback"),
        ({"fallback": {"mode": "shrug"}}, "fallback.mode"),
        ({"widget": {"color": "blue"}}, "widget.color"),
        ({"widget": {"position": "top"}}, "widget.position"),
        ({"widget": {"avatar_url": "http://cdn.example.com/a.png"}}, "widget.avatar_url"),
        ({"widget": {"suggested_questions": ["q"] * 7}}, "widget.suggested_questions"),
        ({"widget": {"suggested_questions": ["x" * 201]}}, "widget.suggested_questions.0"),
        ({"widget": {"allowed_origins": ["https://shop.example.com/path"]}}, "widget.allowed_origins"),
        ({"widget": {"allowed_origins": ["ftp://shop.example.com"]}}, "widget.allowed_origins"),
        (
            {"widget": {"allowed_origins": [f"https://s{i}.example.com" for i in range(51)]}},
            "widget.allowed_origins",
        ),
        ({"widget": {"font": "Comic Sans"}}, "widget.font"),
        ({"status": "disabled"}, "status"),
        ({"document_ids": ["not-a-uuid"]}, "document_ids.0"),
        ({"public_id": "cb_mine"}, "public_id"),
    ],
)
def test_a_field_out_of_its_rules_is_refused_by_name(body: dict[str, Any], field: str) -> None:
    assert refused_fields(body) == [field]


def test_a_model_without_a_known_output_limit_is_held_to_32000() -> None:
    assert max_tokens_limit("anthropic/claude-sonnet-4") == 32000
    assert max_tokens_limit("openai/gpt-4o-mini") == 16384
    assert ChatbotCreate.model_validate({**VALID, "model": "anthropic/claude-sonnet-4", "max_tokens": 32000})


@pytest.mark.parametrize(
    ("origin", "normalized"),
    [
        ("HTTPS://Shop.Example.COM", "https://shop.example.com"),
        ("https://shop.example.com:443/", "https://shop.example.com"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://example.com:80", "http://example.com"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("https://[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_origins_are_normalized(origin: str, normalized: str) -> None:
    assert normalized_origin(origin) == normalized


@pytest.mark.parametrize(
    "origin", ["shop.example.com", "https://user:pw@shop.example.com", "https://shop.example.com?x=1", "https://"]
)
def test_what_is_not_an_origin_is_refused(origin: str) -> None:
    with pytest.raises(ValueError):
        normalized_origin(origin)


def test_duplicate_origins_collapse_and_the_color_is_lowercased() -> None:
    widget = Widget.model_validate(
        {
            "color": "#ABCDEF",
            "allowed_origins": ["https://a.example", "HTTPS://A.example:443", "https://b.example"],
        }
    )
    assert widget.color == "#abcdef"
    assert widget.allowed_origins == ["https://a.example", "https://b.example"]


def test_a_patch_refuses_unknown_fields_and_takes_any_subset() -> None:
    assert ChatbotUpdate.model_validate({}).model_fields_set == set()
    assert ChatbotUpdate.model_validate({"retrieval": {"top_k": 3}}).model_dump(exclude_unset=True) == {
        "retrieval": {"top_k": 3}
    }
    with pytest.raises(ValidationError):
        ChatbotUpdate.model_validate({"public_id": "cb_x"})


def test_the_copy_name_stays_within_100_characters() -> None:
    assert copy_name("Support") == "Support (copy)"
    assert copy_name("x" * 100) == "x" * 93 + " (copy)"
    assert copy_name("x" * 92 + "  yz") == "x" * 92 + " (copy)"  # no blank before the suffix


def test_the_shipped_templates_load_with_one_for_every_use_case() -> None:
    loaded = load_templates()
    assert {t.use_case for t in loaded} == set(USE_CASES)
    assert all(0 <= t.temperature <= 2 and len(t.system_prompt) > 100 for t in loaded)
    assert [t.use_case for t in templates("faq").items] == ["faq"]
    assert len(templates().items) == len(loaded)


@pytest.mark.parametrize(
    "change",
    [
        lambda ts: ts[:-1],  # a use case without a template
        lambda ts: [*ts, ts[0]],  # an id twice
        lambda ts: [{**ts[0], "temperature": 3}, *ts[1:]],
        lambda ts: [{**ts[0], "extra": 1}, *ts[1:]],
    ],
)
def test_a_broken_templates_file_is_refused_when_loaded(tmp_path: Path, change: Any) -> None:
    shipped = json.loads(TEMPLATES_PATH.read_text(encoding="utf-8"))
    broken = tmp_path / "templates.json"
    broken.write_text(json.dumps({"templates": change(shipped["templates"])}), encoding="utf-8")
    with pytest.raises(TemplatesFileError):
        load_templates(broken)
