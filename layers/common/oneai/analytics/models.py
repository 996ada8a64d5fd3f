"""Typed shapes of `GET /workspaces/{id}/analytics` (API.md "Analytics")."""

from __future__ import annotations

from datetime import date
from typing import Final
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from oneai.day_range import DayRangeQuery
from oneai.timestamps import UtcTime

TOP_QUESTIONS: Final = 10


class AnalyticsQuery(DayRangeQuery):
    """`?from&to&chatbot_id`: UTC days, both included; default the last 30 days; at most 366 days."""

    model_config = ConfigDict(extra="forbid")

    chatbot_id: UUID | None = Field(default=None, description="one chatbot of the workspace (default: all)")


class DayMessages(BaseModel):
    date: date
    messages: int = Field(description="visitors' messages and replies sent that UTC day")


class ResponseTime(BaseModel):
    """Over the replies sent in the range; null without any. Within 1 % (+0.5 ms) of the exact nearest-rank
    percentile (log-scale histograms: docs/api/analytics.md)."""

    replies: int = Field(description="replies with a recorded time to first token")
    ttft_p50_ms: int | None = Field(description="time to first token, median")
    ttft_p95_ms: int | None = Field(description="time to first token, 95th percentile")
    p50_ms: int | None = Field(description="time to the reply's end, median")
    p95_ms: int | None = Field(description="time to the reply's end, 95th percentile")


class Satisfaction(BaseModel):
    """The ratings of the conversations started in the range (the last rating given counts)."""

    average: float | None = Field(description="mean score (1-5), 2 decimals; null when none is rated")
    rated: int
    by_score: dict[str, int] = Field(description='conversations per score, "1" to "5"')


class TopQuestion(BaseModel):
    question: str = Field(description="the cluster's first question (its label)")
    count: int = Field(description="conversations started in the range whose first question is in the cluster")


class ChatbotAnalytics(BaseModel):
    chatbot_id: UUID
    name: str
    messages: int
    conversations: int
    avg_messages_per_conversation: float | None
    response_time: ResponseTime
    satisfaction: Satisfaction


class Analytics(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(serialization_alias="from")
    to: date
    chatbot_id: UUID | None
    messages_by_day: list[DayMessages] = Field(description="every day of the range, in order")
    messages: int = Field(description="the range's messages (the sum of messages_by_day)")
    conversations: int = Field(description="conversations started in the range")
    avg_messages_per_conversation: float | None = Field(
        description="messages of the conversations started in the range / their number, 2 decimals"
    )
    response_time: ResponseTime
    satisfaction: Satisfaction
    top_questions: list[TopQuestion] | None = Field(
        description=f"at most {TOP_QUESTIONS}, most asked first; null for a viewer (visitors' words are for "
        "editors and up, as the inbox)"
    )
    by_chatbot: list[ChatbotAnalytics] = Field(
        description="the chatbots with activity in the range, most messages first"
    )
    computed_at: UtcTime | None = Field(
        description="when the newest of the rollups read was computed (the job runs every 5 minutes)"
    )
