"""`kb eval summaries`: key facts loaded, and each summary scored for the facts it states and
the points the model wrote in its own words."""

from __future__ import annotations

import pytest

from kb.errors import InputError
from kb.eval.summaries import KeyFacts, load_key_facts, overall, score_summary
from kb.summarize.points import Cite, Point, Summary


def _point(text: str, mode: str) -> Point:
    return Point(text, Cite((1,), (), ((0, 5),), ()), (text,), 1.0, mode, 0)


def test_key_facts_take_one_wording_or_several(tmp_path):
    path = tmp_path / "facts.jsonl"
    path.write_text('{"file": "dir/policy.docx", "facts": ["14 characters", ["1 hour", "one hour"]]}\n\n')
    assert load_key_facts(path) == [KeyFacts("policy.docx", (("14 characters",), ("1 hour", "one hour")))]
    path.write_text('{"file": "x"}\n')
    with pytest.raises(InputError, match=r"facts\.jsonl:1"):
        load_key_facts(path)


def test_a_summary_is_scored_for_its_facts_and_its_own_words():
    summary = Summary(
        "document",
        "/d/policy.docx",
        "Policy",
        "docx",
        None,
        3,
        [
            _point("Passwords need at least 14 characters.", "generative"),
            _point("Report incidents within one hour.", "extractive"),
        ],
    )
    key = KeyFacts("policy.docx", (("14 characters",), ("1 hour", "one hour"), ("Stefan Albers",)))
    row = score_summary(summary, key)
    assert row["facts_covered"] == ["14 characters", "1 hour"] and row["facts_missing"] == ["Stefan Albers"]
    assert (row["generative_points"], row["extractive_points"]) == (1, 1)
    totals = overall([row])
    assert totals["key_fact_coverage"] == pytest.approx(2 / 3) and totals["generative_share"] == 0.5
