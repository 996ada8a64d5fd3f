"""The analytics' pieces without a database: the percentiles of merged log-scale histograms stay within
the documented bound of the exact nearest-rank percentiles, whatever the days they are split into; the
CSV report neutralises cells a spreadsheet would run."""

from __future__ import annotations

import math
import random
from datetime import date

import pytest

from oneai.analytics.models import Analytics, ResponseTime, Satisfaction, TopQuestion
from oneai.analytics.percentiles import GAMMA, RELATIVE_ERROR, Histogram, bucket_of, representative
from oneai.analytics.rollup import MAX_QUESTION_CHARS, question_text
from oneai.analytics.service import analytics_csv


def nearest_rank(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered))) - 1]


def test_the_bound_is_just_under_one_percent() -> None:
    assert 0.0098 < RELATIVE_ERROR < 0.0100
    assert GAMMA == 1.02


@pytest.mark.parametrize("ms", [0, 1, 2, 3, 49, 50, 51, 999, 1000, 1001, 65_535, 600_000, 3_600_000])
def test_every_duration_is_within_the_bound_of_its_buckets_representative(ms: int) -> None:
    assert abs(round(representative(bucket_of(ms))) - ms) <= RELATIVE_ERROR * ms + 0.5


def test_buckets_are_ordered_like_the_durations() -> None:
    buckets = [bucket_of(ms) for ms in range(0, 20_000)]
    assert buckets == sorted(buckets) and buckets[0] == 0 and buckets[1] == 1
    assert bucket_of(600_000) < 700  # ten minutes fit in under 700 buckets


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("p", [0.5, 0.95, 0.99, 1.0])
def test_merged_days_give_the_percentile_of_all_their_values_within_the_bound(seed: int, p: float) -> None:
    rng = random.Random(seed)
    days = [[int(rng.lognormvariate(6 + seed % 3, 0.9)) for _ in range(rng.randint(1, 400))] for _ in range(30)]
    merged = Histogram()
    for values in days:
        day = Histogram()
        day.add_values(values)
        merged.add(list(day.counts), list(day.counts.values()))
    every = [v for values in days for v in values]
    exact = nearest_rank(every, p)
    estimate = merged.percentile(p)
    assert merged.total == len(every)
    assert estimate is not None and abs(estimate - exact) <= RELATIVE_ERROR * exact + 0.5, (estimate, exact)


def test_no_duration_no_percentile_and_a_bad_p_is_refused() -> None:
    assert Histogram().percentile(0.5) is None
    with pytest.raises(ValueError, match="p must be"):
        Histogram().percentile(0)


def test_a_question_is_kept_with_its_spaces_collapsed_and_cut_to_its_limit() -> None:
    assert question_text("  How do\n I   reset\tit? ") == "How do I reset it?"
    assert len(question_text("x" * 2000)) == MAX_QUESTION_CHARS


def test_the_csv_report_neutralises_formulas_in_questions() -> None:
    report = Analytics(
        from_=date(2026, 10, 1),
        to=date(2026, 10, 1),
        chatbot_id=None,
        messages_by_day=[],
        messages=0,
        conversations=0,
        avg_messages_per_conversation=None,
        response_time=ResponseTime(replies=0, ttft_p50_ms=None, ttft_p95_ms=None, p50_ms=None, p95_ms=None),
        satisfaction=Satisfaction(average=None, rated=0, by_score={s: 0 for s in "12345"}),
        top_questions=[TopQuestion(question='=HYPERLINK("http://x")', count=2)],
        by_chatbot=[],
        computed_at=None,
    )
    text = analytics_csv(report)
    assert "'=HYPERLINK" in text and "\r\n" in text
    assert "avg_messages_per_conversation,\r\n" in text  # none: an empty cell
