"""Settings: environment names and defaults, secrets kept out of logs, and the AWS secret stores
(SSM Parameter Store, Secrets Manager) through Powertools, with moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pydantic
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from oneai.config import Settings, get_settings, load_secret_values, override_settings, reset_settings

SECRET_VALUES = {
    "DATABASE_URL": "postgresql://app:db-pass-123@db.example.test:6543/postgres",
    "SUPABASE_JWT_SECRET": "jwt-secret-456",
    "OPENROUTER_API_KEY": "sk-or-v1-789",
    "RAZORPAY_KEY_SECRET": "rzp-key-secret-abc",
    "RAZORPAY_WEBHOOK_SECRET": "rzp-webhook-secret-def",
}
ENV_NAMES = (
    "DATABASE_URL",
    "SUPABASE_URL",
    "SUPABASE_JWT_SECRET",
    "SUPABASE_JWT_ISSUER",
    "OPENROUTER_API_KEY",
    "OPENROUTER_BASE_URL",
    "RAZORPAY_KEY_ID",
    "RAZORPAY_KEY_SECRET",
    "RAZORPAY_WEBHOOK_SECRET",
    "PORT",
    "DEV_MODE",
    "ONEAI_DEV_MODE",
    "ONEAI_SSM_PATH",
    "ONEAI_SECRET_ID",
    "ONEAI_CORS_ORIGINS",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def aws(clean_env: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto SSM + Secrets Manager, fake credentials, and Powertools' caches empty before and after."""
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        clean_env.setenv(name, value)
    parameters.clear_caches()
    with mock_aws():
        yield {"ssm": boto3.client("ssm"), "secrets": boto3.client("secretsmanager")}
    parameters.clear_caches()


def put_params(ssm: Any, values: dict[str, str], path: str = "/oneai/test/") -> None:
    for name, value in values.items():
        ssm.put_parameter(Name=f"{path}{name}", Value=value, Type="SecureString", Overwrite=True)


# --- environment -------------------------------------------------------------------------------------


def test_every_documented_environment_variable_is_read(clean_env: pytest.MonkeyPatch) -> None:
    # GIVEN the environment of a deployed function
    env = {
        "DATABASE_URL": "postgresql://u:p@h:6543/postgres",
        "SUPABASE_URL": "https://abc.supabase.co",
        "SUPABASE_JWT_SECRET": "s3",
        "SUPABASE_JWT_ISSUER": "https://issuer.test/auth/v1",
        "OPENROUTER_API_KEY": "sk-or",
        "OPENROUTER_BASE_URL": "https://proxy.test/api/v1",
        "RAZORPAY_KEY_ID": "rzp_test_1",
        "RAZORPAY_KEY_SECRET": "rk",
        "RAZORPAY_WEBHOOK_SECRET": "rw",
        "PORT": "8080",
        "ONEAI_DEV_MODE": "true",
        "ONEAI_CORS_ORIGINS": '["https://app.test"]',
    }
    for name, value in env.items():
        clean_env.setenv(name, value)
    # WHEN the settings are built
    s = Settings()
    # THEN each variable lands in its field
    assert s.require_database_url() == env["DATABASE_URL"]
    assert s.supabase_url == "https://abc.supabase.co"
    assert s.supabase_jwt_secret is not None and s.supabase_jwt_secret.get_secret_value() == "s3"
    assert s.supabase_jwt_issuer == "https://issuer.test/auth/v1"
    assert s.openrouter_api_key is not None and s.openrouter_api_key.get_secret_value() == "sk-or"
    assert s.openrouter_base_url == "https://proxy.test/api/v1"
    assert s.razorpay_key_id == "rzp_test_1"
    assert s.razorpay_key_secret is not None and s.razorpay_key_secret.get_secret_value() == "rk"
    assert s.razorpay_webhook_secret is not None and s.razorpay_webhook_secret.get_secret_value() == "rw"
    assert (s.port, s.dev_mode, s.cors_origins) == (8080, True, ["https://app.test"])


def test_defaults_issuer_from_supabase_url_and_openrouter_base(clean_env: pytest.MonkeyPatch) -> None:
    # GIVEN only SUPABASE_URL (with a trailing slash)
    clean_env.setenv("SUPABASE_URL", "https://abc.supabase.co/")
    s = Settings()
    # THEN the issuer and JWKS URL derive from it; OpenRouter, dev mode and the port have their defaults
    assert s.supabase_jwt_issuer == "https://abc.supabase.co/auth/v1"
    assert s.jwks_url == "https://abc.supabase.co/auth/v1/.well-known/jwks.json"
    assert s.openrouter_base_url == "https://openrouter.ai/api/v1"
    assert (s.dev_mode, s.port, s.database_url) == (False, 3000, None)
    # AND without DATABASE_URL the first database use says what is missing
    with pytest.raises(RuntimeError, match="DATABASE_URL"):
        s.require_database_url()


def test_dev_mode_is_only_enabled_by_oneai_dev_mode(clean_env: pytest.MonkeyPatch) -> None:
    # GIVEN an environment with an unrelated, unprefixed DEV_MODE (set by some other tool)
    clean_env.setenv("DEV_MODE", "true")
    # THEN dev mode (which provisions any unknown token subject) stays off
    assert Settings().dev_mode is False
    # AND it is on only with ONEAI_DEV_MODE
    clean_env.setenv("ONEAI_DEV_MODE", "1")
    assert Settings().dev_mode is True


def test_variables_match_in_any_case_and_the_constructor_wins(clean_env: pytest.MonkeyPatch) -> None:
    # GIVEN variables written in lower case, one of them also given to the constructor
    clean_env.setenv("oneai_dev_mode", "yes")
    clean_env.setenv("openrouter_base_url", "https://env.test/api/v1")
    # WHEN the settings are built with an explicit value
    s = Settings(openrouter_base_url="https://given.test/api/v1")
    # THEN the environment fills what was not given, and what was given is kept
    assert s.dev_mode is True
    assert s.openrouter_base_url == "https://given.test/api/v1"


def test_a_list_variable_that_is_not_json_is_refused_by_name(clean_env: pytest.MonkeyPatch) -> None:
    # GIVEN CORS origins written as a comma-separated list instead of JSON
    clean_env.setenv("ONEAI_CORS_ORIGINS", "https://a.test,https://b.test")
    # THEN building the settings fails and says which variable and what shape it needs
    with pytest.raises(pydantic.ValidationError, match=r"ONEAI_CORS_ORIGINS must be JSON"):
        Settings()
    # AND a bad number is refused too, not silently defaulted
    clean_env.setenv("ONEAI_CORS_ORIGINS", '["https://a.test"]')
    clean_env.setenv("ONEAI_MAX_BODY_BYTES", "lots")
    with pytest.raises(pydantic.ValidationError, match=r"max_body_bytes|ONEAI_MAX_BODY_BYTES"):
        Settings()


def test_get_settings_reads_the_environment_once_per_container(clean_env: pytest.MonkeyPatch) -> None:
    session = get_settings()
    # override_settings restores the session settings however the block ends
    with override_settings():
        clean_env.setenv("OPENROUTER_BASE_URL", "https://first.test/api/v1")
        reset_settings()
        first = get_settings()
        clean_env.setenv("OPENROUTER_BASE_URL", "https://second.test/api/v1")
        # WHEN the environment changes in a warm container, THEN the cached settings are kept
        assert get_settings() is first
        assert first.openrouter_base_url == "https://first.test/api/v1"
        # AND a reset reads it again
        reset_settings()
        assert get_settings().openrouter_base_url == "https://second.test/api/v1"
    assert get_settings() is session


def test_secrets_never_appear_in_repr_str_or_json() -> None:
    s = Settings(**{k.lower(): v for k, v in SECRET_VALUES.items()})
    shown = " ".join((repr(s), str(s), s.model_dump_json(), str(s.model_dump())))
    for value in SECRET_VALUES.values():
        assert value not in shown
    assert "db-pass-123" not in shown
    # but the values are there for the code that needs them
    assert s.require_database_url() == SECRET_VALUES["DATABASE_URL"]


def test_override_settings_swaps_validates_and_restores() -> None:
    session = get_settings()
    with override_settings(openrouter_base_url="https://mock.test/api/v1", dev_mode=True) as swapped:
        assert get_settings() is swapped
        assert (swapped.openrouter_base_url, swapped.dev_mode) == ("https://mock.test/api/v1", True)
        # unchanged fields, secrets included, are kept
        assert swapped.supabase_jwt_secret == session.supabase_jwt_secret
    assert get_settings() is session
    # restored after an error too, and invalid values are refused
    with pytest.raises(ZeroDivisionError), override_settings(port=1):
        _ = 1 / 0
    assert get_settings() is session
    with pytest.raises(pydantic.ValidationError), override_settings(port="not-a-port"):
        pass
    assert get_settings() is session


# --- AWS: SSM Parameter Store and Secrets Manager ---------------------------------------------------


def test_no_store_configured_reads_nothing_from_aws(clean_env: pytest.MonkeyPatch) -> None:
    # no credentials, no region: a call to AWS would fail
    assert load_secret_values({"DATABASE_URL": "postgresql://local"}) == {}


def test_ssm_secure_strings_under_the_path_become_settings(aws: dict[str, Any]) -> None:
    # GIVEN SecureString parameters named like the environment variables, plus unrelated ones
    put_params(aws["ssm"], SECRET_VALUES)
    put_params(aws["ssm"], {"PORT": "1234", "UNRELATED": "x", "nested/DATABASE_URL": "postgresql://wrong"})
    put_params(aws["ssm"], {"DATABASE_URL": "postgresql://other-stage"}, path="/oneai/prod/")
    # WHEN the function reads its path
    values = load_secret_values({"ONEAI_SSM_PATH": "/oneai/test/"})
    # THEN exactly the secret keys come back, decrypted, under settings' field names
    assert values == {k.lower(): v for k, v in SECRET_VALUES.items()}
    s = Settings(**values)
    assert s.require_database_url() == SECRET_VALUES["DATABASE_URL"]
    assert s.supabase_jwt_secret is not None
    assert s.supabase_jwt_secret.get_secret_value() == SECRET_VALUES["SUPABASE_JWT_SECRET"]
    assert s.port == 3000


def test_stored_secrets_win_over_the_environment_in_get_settings(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    put_params(aws["ssm"], {"DATABASE_URL": SECRET_VALUES["DATABASE_URL"]})
    # GIVEN a container environment with a stale literal and the SSM path
    monkeypatch.setenv("DATABASE_URL", "postgresql://stale-literal")
    monkeypatch.setenv("OPENROUTER_BASE_URL", "https://env.test/api/v1")
    monkeypatch.setenv("ONEAI_SSM_PATH", "/oneai/test/")
    with override_settings():
        reset_settings()
        s = get_settings()
    # THEN the stored secret wins; non-secret values still come from the environment
    assert s.require_database_url() == SECRET_VALUES["DATABASE_URL"]
    assert s.openrouter_base_url == "https://env.test/api/v1"


def test_secrets_manager_json_secret(aws: dict[str, Any]) -> None:
    # GIVEN a Secrets Manager secret holding a JSON object with the same keys (and an unrelated one)
    document = {"RAZORPAY_KEY_SECRET": "from-sm", "razorpay_webhook_secret": "hook-sm", "OTHER": "x"}
    aws["secrets"].create_secret(Name="oneai/test/app", SecretString=json.dumps(document))
    values = load_secret_values({"ONEAI_SECRET_ID": "oneai/test/app"})
    assert values == {"razorpay_key_secret": "from-sm", "razorpay_webhook_secret": "hook-sm"}
    # AND a binary secret with the same JSON is read as well
    aws["secrets"].create_secret(
        Name="oneai/test/bin", SecretBinary=json.dumps({"DATABASE_URL": "pg://b"}).encode()
    )
    assert load_secret_values({"ONEAI_SECRET_ID": "oneai/test/bin"}) == {"database_url": "pg://b"}


def test_secrets_manager_wins_over_ssm_when_both_are_configured(aws: dict[str, Any]) -> None:
    put_params(aws["ssm"], {"DATABASE_URL": "pg://ssm", "SUPABASE_JWT_SECRET": "jwt-ssm"})
    aws["secrets"].create_secret(Name="oneai/test/app", SecretString=json.dumps({"DATABASE_URL": "pg://sm"}))
    values = load_secret_values({"ONEAI_SSM_PATH": "/oneai/test/", "ONEAI_SECRET_ID": "oneai/test/app"})
    assert values == {"database_url": "pg://sm", "supabase_jwt_secret": "jwt-ssm"}


def test_values_are_cached_across_warm_invocations(aws: dict[str, Any]) -> None:
    env = {"ONEAI_SSM_PATH": "/oneai/test/", "ONEAI_SECRET_ID": "oneai/test/app"}
    put_params(aws["ssm"], {"DATABASE_URL": "pg://v1"})
    aws["secrets"].create_secret(Name="oneai/test/app", SecretString=json.dumps({"OPENROUTER_API_KEY": "k1"}))
    assert load_secret_values(env) == {"database_url": "pg://v1", "openrouter_api_key": "k1"}
    # WHEN both stores change within max_age
    put_params(aws["ssm"], {"DATABASE_URL": "pg://v2"})
    aws["secrets"].put_secret_value(
        SecretId="oneai/test/app", SecretString=json.dumps({"OPENROUTER_API_KEY": "k2"})
    )
    # THEN the next invocation still sees the cached values (no AWS call)
    assert load_secret_values(env) == {"database_url": "pg://v1", "openrouter_api_key": "k1"}
    # AND a cold start (caches cleared) sees the new ones
    parameters.clear_caches()
    assert load_secret_values(env) == {"database_url": "pg://v2", "openrouter_api_key": "k2"}


# --- rotation and SnapStart restore ------------------------------------------------------------------


def test_a_rotated_secret_reaches_a_warm_container_after_the_max_age(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from oneai import config

    now = [1000.0]
    monkeypatch.setattr(config, "_clock", lambda: now[0])
    monkeypatch.setenv("ONEAI_SSM_PATH", "/oneai/test/")
    put_params(aws["ssm"], {"DATABASE_URL": "pg://v1", "OPENROUTER_API_KEY": "k1"})
    with override_settings():
        monkeypatch.setattr(config, "_overridden", False)  # as in Lambda: nothing pinned
        reset_settings()
        first = get_settings()
        assert first.require_database_url() == "pg://v1"
        # WHEN the secret is rotated
        put_params(aws["ssm"], {"DATABASE_URL": "pg://v2"})
        # THEN within the max age the container keeps the same settings (no AWS call)
        now[0] += config.SECRETS_MAX_AGE_SECONDS - 1
        assert get_settings() is first
        # AND after it the new value is read
        now[0] += 2
        second = get_settings()
        assert second.require_database_url() == "pg://v2"
        # AND while nothing changes the same object is kept (connections built on it stay)
        now[0] += config.SECRETS_MAX_AGE_SECONDS + 1
        assert get_settings() is second


def test_the_snapstart_restore_hook_closes_the_connection_and_forgets_the_secrets(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import snapshot_restore_py

    from oneai.database import get_database
    from oneai.runtime import forget_pre_snapshot_state, freeze_startup_objects

    monkeypatch.setenv("ONEAI_SSM_PATH", "/oneai/test/")
    put_params(aws["ssm"], {"OPENROUTER_API_KEY": "before-snapshot"})
    with override_settings():
        reset_settings()
        database, settings = get_database(), get_settings()
        # GIVEN the handler's init registered the hook with the runtime's library (once)
        freeze_startup_objects()
        freeze_startup_objects()
        hooks = [hook for hook, _, _ in snapshot_restore_py._after_restore_registry]
        assert hooks.count(forget_pre_snapshot_state) == 1
        put_params(aws["ssm"], {"OPENROUTER_API_KEY": "after-restore"})
        # WHEN Lambda resumes the snapshot and runs the hooks
        for hook, args, kwargs in snapshot_restore_py._after_restore_registry:
            hook(*args, **kwargs)
        # THEN the next request reads the secrets again and builds a new database
        restored = get_settings()
        assert restored is not settings
        assert restored.openrouter_api_key is not None
        assert restored.openrouter_api_key.get_secret_value() == "after-restore"
        assert get_database() is not database
