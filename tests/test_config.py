"""Settings from the environment and a TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import ConfigError, Settings, load_settings, mask_url, public_view


def test_defaults() -> None:
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.redis_url is None
    assert settings.data_dir == Path("flares-data")
    assert settings.allowed_domains == []


def test_environment_with_nested_provider_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLARES_ALLOWED_DOMAINS", "Example.com, blog.test ,")
    monkeypatch.setenv("FLARES_PROVIDERS__HACKERNEWS__BASE_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("FLARES_PROVIDERS__HACKERNEWS__ENABLED", "false")
    monkeypatch.setenv("FLARES_PROVIDERS__FACEBOOK__APP_SECRET", "shh")
    monkeypatch.setenv("FLARES_SCHEDULE__TICK_SECONDS", "1")
    settings = load_settings()
    assert settings.allowed_domains == ["example.com", "blog.test"]
    assert settings.provider("hackernews").base_url == "http://127.0.0.1:9000"
    assert settings.provider("hackernews").enabled is False
    assert settings.provider("facebook").values() == {"app_secret": "shh"}
    assert settings.provider("hatena").enabled is None
    assert settings.schedule.tick_seconds == 1.0


def test_bad_base_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLARES_PROVIDERS__HATENA__BASE_URL", "ftp://mirror")
    with pytest.raises(ValueError, match="absolute http"):
        load_settings()


def test_toml_file_from_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "flares.toml"
    config.write_text("port = 9001\n[providers.hatena]\nenabled = false\ntimeout = 3.5\n")
    monkeypatch.setenv("FLARES_CONFIG", str(config))
    settings = load_settings()
    assert settings.port == 9001
    assert settings.provider("hatena").enabled is False
    assert settings.provider("hatena").timeout == 3.5


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_public_view_masks_every_secret() -> None:
    settings = Settings(
        admin_key="adm1n",
        redis_url="rediss://user:p4ss@redis.internal:6380/2",
        providers={"facebook": {"app_id": "123", "app_secret": "s3cr3t"}},
    )
    text = str(public_view(settings))
    for secret in ("adm1n", "p4ss", "s3cr3t", "123"):
        assert secret not in text
    assert public_view(settings)["redis_url"] == "rediss://user:***@redis.internal:6380/2"


def test_mask_url_leaves_plain_urls() -> None:
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLARES_ADMIN_KEY", "")
    monkeypatch.setenv("FLARES_PROVIDERS__FACEBOOK__APP_SECRET", "")
    assert load_settings().admin_key is None
    assert load_settings().provider("facebook").values() == {}
    monkeypatch.delenv("FLARES_ADMIN_KEY")
    config = tmp_path / "flares.toml"
    config.write_text('admin_key = "  "\n[providers.facebook]\napp_id = ""\n')
    assert load_settings(config).admin_key is None
    assert load_settings(config).provider("facebook").values() == {}
