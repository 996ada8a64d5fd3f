"""Folding streamed `chat.completion.chunk` deltas into one `chat.completion` message (what a `/v1` request
without streaming answers): text, and tool calls whose name and arguments arrive in pieces."""

from __future__ import annotations

from typing import Any

from oneai.chat.completions import CompletionRequest, _empty_choice, _merge_choice


def fold(deltas: list[dict[str, Any]]) -> dict[str, Any]:
    choice = _empty_choice(deltas[0])
    for delta in deltas:
        _merge_choice(choice, delta)
    return choice


def test_given_text_deltas_then_the_message_is_their_concatenation() -> None:
    choice = fold(
        [
            {"index": 0, "delta": {"role": "assistant", "content": ""}},
            {"index": 0, "delta": {"content": "Hel"}},
            {"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"},
        ]
    )
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": "Hello"},
        "finish_reason": "stop",
        "logprobs": None,
    }


def test_given_tool_call_deltas_then_each_call_is_assembled_in_order() -> None:
    choice = fold(
        [
            {"index": 0, "delta": {"role": "assistant", "tool_calls": [
                {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_", "arguments": ""}}]}},
            {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": '{"ci'}}]}},
            {"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "now", "arguments": "{}"}}]}},
            {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Pune"}'}}]}},
            {"index": 0, "delta": {}, "finish_reason": "tool_calls"},
        ]
    )  # fmt: skip
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Pune"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "now", "arguments": "{}"}},
    ]


def test_given_a_request_then_only_supported_parameters_are_passed_through() -> None:
    request = CompletionRequest.model_validate(
        {
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.3,
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "user": "someone-else",
            "store": True,
            "top_p": None,
            "stream_options": {"include_usage": True},
            "stream": True,
        }
    )
    assert request.passthrough() == {
        "temperature": 0.3,
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    assert request.include_usage and request.stream
