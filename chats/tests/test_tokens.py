"""Token counts for estimates (chats.providers.tokens): the same counts as bpe-openai's
own encodings, without importing the package (whose import decodes every rank file)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

from chats.providers import tokens

TEXT = "Where do I renew my passport? Où renouveler mon passeport ? 1234 ½ 🙂\n\tdone."


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("my-deployment", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
    ],
)
def test_openai_models_count_with_their_encoding(model, encoding):
    import bpe_openai

    assert tokens.encoding_name("openai", model) == encoding
    expected = len(bpe_openai.get_encoding(encoding).encode_ordinary(TEXT))
    assert tokens.count(TEXT, provider="openai", model=model) == expected


def test_other_language_models_count_with_o200k_and_extractive_counts_words():
    import bpe_openai

    expected = len(bpe_openai.get_encoding("o200k_base").encode_ordinary(TEXT))
    assert tokens.count(TEXT, provider="compatible", model="local") == expected
    assert not tokens.is_exact("compatible")
    assert tokens.count("three short words", provider="extractive", model="") == 3


def test_lone_surrogates_are_counted_not_refused():
    assert tokens.count("bad \ud800 text", provider="compatible", model="local") > 0


def test_counting_does_not_import_the_bpe_openai_package():
    script = (
        "import sys\n"
        "from chats.providers import tokens\n"
        "tokens.count_messages(['a system prompt', 'a question'], provider='openai',"
        " model='gpt-4o')\n"
        "print('bpe_openai' in sys.modules)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "batchchat.settings"}
    env.pop("DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + script],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "False"
