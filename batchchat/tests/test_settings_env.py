"""Settings read from the environment refuse nonsense, naming the variable."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from batchchat.settings import env_bool, env_float, env_int


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("off", False),
        ("False", False),
        ("no", False),
        ("", True),
    ],
)
def test_env_bool_reads_the_usual_words(monkeypatch, value, expected):
    monkeypatch.setenv("SOME_FLAG", value)
    assert env_bool("SOME_FLAG", True) is expected


@pytest.mark.parametrize("value", ["tru", "flase", "2", "enabled", "y e s"])
def test_env_bool_refuses_anything_else_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("SOME_FLAG", value)
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG=.* is not a yes/no value"):
        env_bool("SOME_FLAG")


def test_env_int_reads_whole_numbers_and_refuses_others(monkeypatch):
    monkeypatch.setenv("SOME_COUNT", " 20_000 ")
    assert env_int("SOME_COUNT", 1) == 20_000
    monkeypatch.setenv("SOME_COUNT", "")
    assert env_int("SOME_COUNT", 7) == 7
    for bad in ("x", "1.5", "10k"):
        monkeypatch.setenv("SOME_COUNT", bad)
        with pytest.raises(ImproperlyConfigured, match="SOME_COUNT=.* is not a whole number"):
            env_int("SOME_COUNT", 1)


def test_env_float_refuses_text_and_infinities(monkeypatch):
    monkeypatch.setenv("SOME_SECONDS", "2.5")
    assert env_float("SOME_SECONDS", 1.0) == 2.5
    for bad in ("soon", "nan", "inf"):
        monkeypatch.setenv("SOME_SECONDS", bad)
        with pytest.raises(ImproperlyConfigured, match="SOME_SECONDS=.* is not a number"):
            env_float("SOME_SECONDS", 1.0)


def test_the_app_does_not_start_with_a_bad_value():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={"PATH": "/usr/bin:/bin", "DJANGO_DEBUG": "flase"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DJANGO_DEBUG='flase' is not a yes/no value" in result.stderr
