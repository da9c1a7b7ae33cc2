"""apk-tools' solver cases: the committed report is current, nothing fails, every exemption is live."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import solvercases

REPORT = Path(__file__).resolve().parent.parent / "docs" / "solver-cases.md"
# The current tally; a case that starts agreeing must leave BY_DESIGN (and this line) in the same commit.
TALLY = {"agree": 88, "differs by design": 31}


@pytest.fixture(scope="module")
def outcomes() -> list[solvercases.Outcome]:
    return solvercases.run_all()


def test_report_is_current(outcomes) -> None:
    text = solvercases.render(outcomes)
    assert REPORT.read_text() == text, "regenerate: python tests/solvercases.py --report docs/solver-cases.md"


def test_every_case_agrees_or_differs_by_design(outcomes) -> None:
    assert len(outcomes) == 119
    assert [o.case for o in outcomes if o.verdict == "fails"] == []
    assert dict(Counter(o.verdict for o in outcomes)) == TALLY


def test_no_stale_exemption(outcomes) -> None:
    """Every BY_DESIGN entry names a case that exists and still differs."""
    verdict = {o.case: o.verdict for o in outcomes}
    stale = {name: verdict.get(name, "no such case") for name in solvercases.BY_DESIGN
             if verdict.get(name) != "differs by design"}
    assert stale == {}


def test_exact_add_cases_compare_order() -> None:
    case = solvercases.load_case(solvercases.DEFAULT_CASES / "installif6.test")
    out = solvercases.run_case(case, solvercases.DEFAULT_CASES)
    assert out.verdict == "agree" and "order" in out.note
