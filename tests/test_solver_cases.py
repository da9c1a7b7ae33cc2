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
    text = solvercases.render(outcomes) + solvercases.render_provider_worlds(solvercases.provider_worlds())
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


def test_real_index_provider_worlds_follow_apk_tools() -> None:
    worlds = solvercases.provider_worlds()
    assert len(worlds) >= 300
    assert [w.name for w in worlds if not w.agrees] == []
    chosen = {(w.index, w.name): w.got for w in worlds}
    assert chosen[("Alpine v3.16 main x86_64", "ifupdown-any")] == "ifupdown-ng-0.12.1-r0"
    assert chosen[("Alpine v3.17 main aarch64", "lua")] == "lua5.4-5.4.6-r0"


def test_provider_oracle_can_disagree() -> None:
    """The oracle is not our resolver: on a world where apko's origin rule would decide, the
    oracle still names the highest priority."""
    from distroless.apk.model import Package
    from distroless.resolve.provider import Index
    index = Index.build([Package("low", "1", provides=["virt"], provider_priority=1, origin="o"),
                         Package("high", "1", provides=["virt"], provider_priority=9, origin="x"),
                         Package("none", "1", provides=["virt"])])
    assert solvercases.apk_tools_choice(index, "virt") == "high-1"
    assert solvercases.apk_tools_choice(Index.build([Package("a", "1", provides=["v"]),
                                                     Package("b", "1", provides=["v"])]), "v") == "error"
