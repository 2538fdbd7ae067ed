"""Formula neutralisation looks past the blanks a spreadsheet skips before a formula."""

from __future__ import annotations

import pytest

from batches.export import neutralise_formula


@pytest.mark.parametrize(
    "text",
    [
        " =1+1",
        "   +SUM(A1)",
        "\u00a0=1+1",  # no-break space
        "\n=1+1",
        "\ufeff=1+1",  # BOM
        "\u200b@SUM(A1)",  # zero-width space
        "\u3000-2+3",  # ideographic space
        ' \t =HYPERLINK("x")',
    ],
)
def test_formulas_after_leading_blanks_are_neutralised(text):
    assert neutralise_formula(text) == "'" + text


@pytest.mark.parametrize("text", ["plain", " plain", "\u00a0What is EI?", "a=b", "", "   "])
def test_other_text_is_left_alone(text):
    assert neutralise_formula(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "\uff1d1+1",  # fullwidth equals sign
        "\ufe66SUM(A1)",  # small equals sign
        "\u22122+3",  # minus sign
        "\uff0b1",  # fullwidth plus
        "\uff0d1",  # fullwidth hyphen-minus
        "\uff20SUM(A1)",  # fullwidth commercial at
        " \uff1d1+1",
    ],
)
def test_fullwidth_and_look_alike_formula_signs_are_neutralised(text):
    assert neutralise_formula(text) == "'" + text
