from pathlib import Path

import pytest

from dialer.config import load_config, parse_config, render
from dialer.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_loads_with_documented_keys() -> None:
    config = load_config(ROOT / "campaigns" / "example.yaml")
    assert config.name == "Spring reminders"
    assert config.max_attempts == 3
    assert config.retry_delay_s.busy == 900
    assert config.calling_window.days == ("mon", "tue", "wed", "thu", "fri", "sat")
    assert config.max_concurrent_calls == 10
    assert config.ring_timeout_s == 30


def test_every_field_but_name_has_a_default() -> None:
    config = parse_config({"name": "Minimal"})
    assert config.max_attempts >= 1
    assert config.calling_window.start == "09:00"


def test_bad_values_are_reported_with_their_field_path() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({
            "name": "x",
            "calling_window": {"start": "25:00"},
            "retry_delay_s": {"busy": -1},
            "default_region": "ZZ",
        })
    message = str(err.value)
    assert "calling_window.start" in message
    assert "retry_delay_s.busy" in message
    assert "default_region" in message


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match="max_atempts: unknown key"):
        parse_config({"name": "x", "max_atempts": 3})


def test_missing_name_is_reported() -> None:
    with pytest.raises(ConfigError, match="name: Field required"):
        parse_config({})


def test_window_start_must_precede_end() -> None:
    with pytest.raises(ConfigError, match="must be before end"):
        parse_config({"name": "x", "calling_window": {"start": "20:00", "end": "09:00"}})


def test_leave_message_needs_a_message() -> None:
    with pytest.raises(ConfigError, match="voicemail_message"):
        parse_config({"name": "x", "voicemail_action": "leave_message"})


def test_invalid_timezone_and_caller_id_are_rejected() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"name": "x", "default_timezone": "Mars/Olympus", "caller_id": "12"})
    assert "default_timezone" in str(err.value)
    assert "caller_id" in str(err.value)


def test_missing_and_malformed_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)


def test_templates_render_contact_variables_and_blank_unknown_ones() -> None:
    assert render("Hi {first_name}{missing}!", {"first_name": "Ada"}) == "Hi Ada!"


def test_overrides_win_over_the_file() -> None:
    config = load_config(ROOT / "campaigns" / "example.yaml", {"name": "Other", "default_region": "gb"})
    assert (config.name, config.default_region) == ("Other", "GB")
