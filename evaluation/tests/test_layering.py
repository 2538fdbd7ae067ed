"""Apps depend one way (DESIGN "Layout"): `batches` never imports `evaluation`, `chats`
imports neither; batches reaches the graders through batches.hooks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from batches import hooks

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"batches": ("evaluation",), "chats": ("batches", "evaluation")}


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _offences(app: str) -> list[str]:
    offences = []
    for path in sorted((ROOT / app).rglob("*.py")):
        relative = path.relative_to(ROOT)
        # A migration runs with every app installed (0012 computes verdicts by the
        # evaluation rules of its date); tests of an app may build on another's.
        if "migrations" in relative.parts or "tests" in relative.parts:
            continue
        for name in _imported(path) & set(FORBIDDEN[app]):
            offences.append(f"{relative} imports {name}")
    return offences


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_lower_apps_never_import_higher_ones(app):
    assert _offences(app) == []


def test_the_checker_sees_an_import(tmp_path, monkeypatch):
    module = tmp_path / "batches" / "bad.py"
    module.parent.mkdir()
    module.write_text("from evaluation.grading import grade_items\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert _offences("batches") == ["batches/bad.py imports evaluation"]


def test_evaluation_registers_its_graders_at_start(monkeypatch):
    # Registered at start, imported at first call (a command does not pay for them).
    from evaluation import grading

    calls = []
    monkeypatch.setattr(grading, "grade_items", lambda *args, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(grading, "grade_summaries", lambda ids: {pk: "summary" for pk in ids})
    graders = hooks.graders()
    graders.grade_items(items=[1])
    assert calls == [{"items": [1]}]
    assert graders.summaries([3]) == {3: "summary"}


def test_no_graders_is_a_configuration_error(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setattr(hooks, "_registered", None)
    with pytest.raises(ImproperlyConfigured, match="evaluation"):
        hooks.graders()
