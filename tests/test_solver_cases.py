"""apk-tools' solver cases: the committed report is current and every failure is explained."""

from __future__ import annotations

from pathlib import Path

import solvercases

REPORT = Path(__file__).resolve().parent.parent / "docs" / "solver-cases.md"


def test_report_is_current() -> None:
    text = solvercases.render(solvercases.run_all())
    assert REPORT.read_text() == text, "regenerate: python tests/solvercases.py --report docs/solver-cases.md"


def test_every_case_agrees_or_is_explained() -> None:
    outcomes = solvercases.run_all()
    assert len(outcomes) == 119
    unexplained = [o.case for o in outcomes if o.verdict == "fails" and o.case not in solvercases.KNOWN_FAILS]
    assert unexplained == []
    stale = [o.case for o in outcomes if "stale by-design entry" in o.note]
    assert stale == []
    assert sum(o.verdict == "agree" for o in outcomes) >= 84


def test_exact_add_cases_compare_order() -> None:
    case = solvercases.load_case(solvercases.DEFAULT_CASES / "installif6.test")
    out = solvercases.run_case(case, solvercases.DEFAULT_CASES)
    assert out.verdict == "agree" and "order" in out.note
