"""Folding a reply's parts and finishing a follower's message from the folded reply
(`oneai.chat.resumable`): whatever batches a follower saw before the reply ended, it ends with the same
message as the original stream."""

from __future__ import annotations

import itertools
from typing import Any

from oneai.chat.resumable import ReplayCursor, fold_parts

STREAM: list[dict[str, Any]] = [
    {"type": "start", "messageId": "m1"},
    {"type": "data-conversation", "id": "conversation", "data": {"id": "c1", "title": None}},
    {"type": "text-start", "id": "t0"},
    *({"type": "text-delta", "id": "t0", "delta": word} for word in ["Hé", "llo ", "wör", "ld ", "🙂", "!"]),
    {"type": "text-end", "id": "t0"},
    {"type": "data-usage", "data": {"model": "m", "cost": "0.1"}},
    {"type": "data-conversation", "id": "conversation", "data": {"id": "c1", "title": "Hi"}},
    {"type": "finish"},
]


def message_of(stream: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """What a client rebuilds that matters here: the text, and the other parts in order."""
    text = "".join(p["delta"] for p in stream if p["type"] == "text-delta")
    return text, [repr(p) for p in stream if p["type"] != "text-delta"]


def test_folding_merges_consecutive_deltas_of_one_part_and_keeps_everything_else() -> None:
    folded = fold_parts(STREAM)
    assert [p["type"] for p in folded] == [
        "start", "data-conversation", "text-start", "text-delta", "text-end", "data-usage",
        "data-conversation", "finish",
    ]  # fmt: skip
    assert folded[3] == {"type": "text-delta", "id": "t0", "delta": "Héllo wörld 🙂!"}
    assert message_of(folded) == message_of(STREAM)


def test_deltas_of_different_parts_are_not_merged() -> None:
    stream = [
        {"type": "reasoning-delta", "id": "r0", "delta": "think"},
        {"type": "text-delta", "id": "t0", "delta": "a"},
        {"type": "text-delta", "id": "t1", "delta": "b"},
        {"type": "text-delta", "id": "t1", "delta": "c"},
    ]
    assert fold_parts(stream) == [stream[0], stream[1], {"type": "text-delta", "id": "t1", "delta": "bc"}]


def test_a_follower_that_saw_any_prefix_finishes_with_the_same_message() -> None:
    folded = fold_parts(STREAM)
    for seen in range(len(STREAM) + 1):
        cursor = ReplayCursor()
        sent = [cursor.take(part) for part in STREAM[:seen]]
        rest = cursor.rest(folded)
        assert message_of(sent + rest) == message_of(STREAM), f"after {seen} parts"
        # nothing is sent twice
        assert len([p for p in sent + rest if p["type"] == "finish"]) == 1


def test_a_follower_whose_batches_split_a_reply_anywhere_gets_it_exactly_once() -> None:
    folded = fold_parts(STREAM)
    # batches of every size, the follower having seen the first k batches when the reply ended
    for size, k in itertools.product(range(1, 5), range(6)):
        batches = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
        cursor = ReplayCursor()
        sent = [cursor.take(part) for batch in batches[:k] for part in batch]
        assert message_of(sent + cursor.rest(folded)) == message_of(STREAM)


def test_a_follower_that_saw_nothing_gets_the_whole_folded_reply() -> None:
    assert ReplayCursor().rest(fold_parts(STREAM)) == fold_parts(STREAM)
