"""The pieces of workspace credits that need no database (issue 26): reading an amount, turning a reply's
USD cost and a model's prices into INR, and the usage CSV."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from pydantic import ValidationError as PydanticValidationError

from oneai.config import get_settings
from oneai.credits import service
from oneai.credits.models import (
    AdjustRequest,
    CreditUsage,
    GrantRequest,
    PurchaseRequest,
    UsageGroupRow,
    UsageQuery,
    parse_amount,
)
from oneai.errors import ValidationError
from oneai.openrouter.catalog import OpenRouterModel


@pytest.mark.parametrize(
    ("given", "amount"),
    [("500", Decimal("500")), ("500.5", Decimal("500.5")), ("100000.00", Decimal("100000")), (250, Decimal(250))],
)
def test_an_amount_is_a_decimal_string_of_rupees_or_a_whole_number(given: object, amount: Decimal) -> None:
    assert parse_amount(given) == amount
    assert PurchaseRequest.model_validate({"amount": given}).amount == amount


@pytest.mark.parametrize(
    "given", ["12.345", "-5", "0", "0.00", "1e3", "abc", "", " ", 12.5, True, None, "Infinity", "NaN"]
)
def test_anything_else_is_refused(given: object) -> None:
    with pytest.raises(ValueError):
        parse_amount(given)
    with pytest.raises(PydanticValidationError):
        PurchaseRequest.model_validate({"amount": given})


@pytest.mark.parametrize("given", ["12.345", "0.001", "-0.005", "-1.005", "--1", "-0", "-0.00", 12.5, -12.5])
def test_an_adjustment_with_more_than_two_decimals_or_no_amount_is_refused(given: object) -> None:
    with pytest.raises(PydanticValidationError):
        AdjustRequest.model_validate({"amount": given, "reason": "fix"})


@pytest.mark.parametrize("given", ["12.345", "0.001", "0.005", "-5", "0", "0.00", 12.5])
def test_a_grant_with_more_than_two_decimals_or_not_over_zero_is_refused(given: object) -> None:
    with pytest.raises(PydanticValidationError):
        GrantRequest.model_validate({"amount": given, "reason": "fix"})


def test_an_adjustment_is_signed_with_at_most_two_decimals() -> None:
    assert AdjustRequest.model_validate({"amount": "-20.50", "reason": "fix"}).amount == Decimal("-20.50")
    assert AdjustRequest.model_validate({"amount": "0.01", "reason": "fix"}).amount == Decimal("0.01")


def test_the_purchase_range_comes_from_the_settings_and_gives_paise() -> None:
    settings = get_settings()
    assert service.check_purchase_amount(settings, Decimal("100")) == 10_000
    assert service.check_purchase_amount(settings, Decimal("1234.56")) == 123_456
    assert service.check_purchase_amount(settings, Decimal("100000")) == 10_000_000
    for outside in (Decimal("99.99"), Decimal("100000.01")):
        with pytest.raises(ValidationError) as refused:
            service.check_purchase_amount(settings, outside)
        assert refused.value.details["errors"][0]["field"] == "amount"
    narrower = settings.model_copy(update={"credits_min_purchase": Decimal(500)})
    with pytest.raises(ValidationError):
        service.check_purchase_amount(narrower, Decimal("499"))


def test_a_cost_converts_at_the_rate_and_markup_and_a_negative_one_costs_nothing() -> None:
    settings = get_settings().model_copy(
        update={"usd_inr_rate": Decimal("84.5"), "credits_markup": Decimal("1.2")}
    )
    assert service.credits_for_cost(settings, Decimal("0.001")) == Decimal("0.101400")
    assert service.credits_for_cost(settings, Decimal("-1")) == 0


def test_a_replys_estimate_is_its_prompt_and_max_tokens_at_the_models_prices_rounded_up_to_the_paisa() -> None:
    settings = get_settings().model_copy(update={"usd_inr_rate": Decimal(85), "credits_markup": Decimal(1)})
    # gpt-4o-mini: USD 0.15 / 0.60 per million tokens; 2,000 prompt tokens, 50,000 tokens of reply at most
    estimate = service.estimate_reply_cost(
        settings,
        prompt_price=Decimal("0.00000015"),
        completion_price=Decimal("0.0000006"),
        prompt_tokens=2_000,
        max_tokens=50_000,
    )
    assert estimate == Decimal("2.58")  # USD 0.0303 x 85 = 2.5755, up to the paisa
    # a cheap reply reserves the floor; unknown or negative prices (router models) the floor too
    for prices in ((Decimal("0.00000015"), Decimal("0.0000006")), (None, None), (Decimal(-1), Decimal(-1))):
        assert (
            service.estimate_reply_cost(
                settings, prompt_price=prices[0], completion_price=prices[1], prompt_tokens=10, max_tokens=10
            )
            == settings.credits_min_reserve
        )


def test_the_usage_csv_has_a_header_plain_decimals_and_no_formulas() -> None:
    report = CreditUsage(
        group_by="model",
        items=[
            UsageGroupRow(
                key="openai/gpt-4o-mini",
                messages=3,
                prompt_tokens=120,
                completion_tokens=300,
                cost_usd=Decimal("0.000198"),
                credits=Decimal("0.016830"),
            ),
            UsageGroupRow(
                key="=HYPERLINK(1)",
                messages=1,
                prompt_tokens=1,
                completion_tokens=1,
                cost_usd=Decimal(0),
                credits=Decimal(0),
            ),
        ],
    )
    assert service.usage_csv(report).splitlines() == [
        "model,messages,prompt_tokens,completion_tokens,cost_usd,credits_inr",
        "openai/gpt-4o-mini,3,120,300,0.000198,0.01683",
        "'=HYPERLINK(1),1,1,1,0,0.00",
    ]


@pytest.mark.parametrize("key", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1+1", "\r=1+1"])
def test_no_usage_csv_cell_starts_as_a_formula_a_spreadsheet_would_run(key: str) -> None:
    """The starts OWASP lists (and the account's usage CSV guards): `=`, `+`, `-`, `@`, tab, carriage return."""
    report = CreditUsage(
        group_by="model",
        items=[
            UsageGroupRow(
                key=key, messages=1, prompt_tokens=1, completion_tokens=1, cost_usd=Decimal(0), credits=Decimal(0)
            )
        ],
    )
    [_, row] = list(csv.reader(io.StringIO(service.usage_csv(report))))
    assert row[0] == "'" + key


def test_a_usage_range_that_holds_no_time_is_refused() -> None:
    with pytest.raises(PydanticValidationError):
        UsageQuery.model_validate({"from": "2026-03-02", "to": "2026-03-01"})
    assert UsageQuery.model_validate({"group_by": "provider_key", "from": "2026-03-01"}).group_by == "provider_key"
    with pytest.raises(PydanticValidationError):
        UsageQuery.model_validate({"group_by": "week"})


def test_the_estimate_reads_the_catalogs_prices_and_a_router_models_price_of_minus_one_is_the_floor() -> None:
    settings = get_settings().model_copy(update={"usd_inr_rate": Decimal(85), "credits_markup": Decimal(1)})
    listed = OpenRouterModel.model_validate(
        {
            "id": "openai/gpt-4o-mini",
            "name": "GPT-4o mini",
            "pricing": {"prompt": "0.00000015", "completion": "0.0000006"},
        }
    )
    assert service.estimate_for_model(settings, listed, prompt_tokens=2_000, max_tokens=50_000) == Decimal("2.58")
    router = OpenRouterModel.model_validate(
        {"id": "openrouter/auto", "name": "Auto", "pricing": {"prompt": "-1", "completion": "-1"}}
    )
    assert service.estimate_for_model(settings, router, prompt_tokens=2_000, max_tokens=50_000) == Decimal(1)
