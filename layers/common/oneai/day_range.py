"""`?from&to` of a report over UTC days (a chatbot's stats, the inbox's, the product's analytics)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from oneai.timestamps import IsoDate, require_ordered

DEFAULT_DAYS: Final = 30
MAX_DAYS: Final = 366


class DayRangeQuery(BaseModel):
    """UTC days, both included; by default the last 30 days to today; at most 366 days."""

    model_config = ConfigDict(populate_by_name=True)

    from_: IsoDate | None = Field(
        default=None, alias="from", description="First UTC day (default: 29 days before `to`)"
    )
    to: IsoDate | None = Field(
        default=None, validate_default=True, description="Last UTC day, included (default: today)"
    )

    @field_validator("to", mode="after")
    @classmethod
    def _range(cls, to: date | None, info: ValidationInfo) -> date:
        # `from` is validated first; a bad `from` is reported on its own and leaves nothing to compare.
        end = to if to is not None else datetime.now(UTC).date()
        start = info.data.get("from_")
        if isinstance(start, date):
            require_ordered(start, end, end_included=True)
            if (end - start).days + 1 > MAX_DAYS:
                raise ValueError(f"the range is at most {MAX_DAYS} days")
        return end

    @model_validator(mode="after")
    def _default_start(self) -> DayRangeQuery:
        if self.from_ is None and self.to is not None:
            self.from_ = self.to - timedelta(days=DEFAULT_DAYS - 1)
        return self

    @property
    def first_day(self) -> date:
        assert self.from_ is not None
        return self.from_

    @property
    def last_day(self) -> date:
        assert self.to is not None
        return self.to
