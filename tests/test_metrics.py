"""Metrics against values worked out by hand, with trec_eval's tie and relevance conventions."""

from __future__ import annotations

import math

import pytest

from kb.errors import InputError
from kb.eval.metrics import (
    evaluate_queries,
    evaluate_run,
    mrr_at_k,
    ndcg_at_k,
    percentile,
    precision_at_k,
    rank,
    recall_at_k,
    trec_score,
)

LOG3 = math.log2(3)  # discount at rank 2
LOG5 = math.log2(5)  # discount at rank 4

GRADED = {"a": 2, "b": 1, "c": 0, "d": -1}


def test_ndcg_graded_worked_example() -> None:
    # ranked x a c b: gains 0, 2, 0, 1 -> DCG@4 = 2/log2(3) + 1/log2(5) = 1.26186 + 0.43068
    # ideal a b:      gains 2, 1       -> IDCG  = 2 + 1/log2(3)          = 2.63093
    # nDCG@4 = 1.69254 / 2.63093 = 0.64332
    ranked = ["x", "a", "c", "b"]
    assert ndcg_at_k(ranked, GRADED, 4) == pytest.approx((2 / LOG3 + 1 / LOG5) / (2 + 1 / LOG3))
    assert ndcg_at_k(ranked, GRADED, 4) == pytest.approx(0.6433224, abs=1e-7)
    # cut at 2 keeps only a: 1.26186 / 2.63093 = 0.47962
    assert ndcg_at_k(ranked, GRADED, 2) == pytest.approx(0.4796249, abs=1e-7)
    assert ndcg_at_k(ranked, GRADED, 1) == 0.0


def test_ndcg_gain_is_linear_not_exponential() -> None:
    # a(1) b(3): DCG = 1 + 3/log2(3); IDCG = 3 + 1/log2(3) -> 0.79671 (2**rel-1 would give 0.70981)
    assert ndcg_at_k(["a", "b"], {"a": 1, "b": 3}, 10) == pytest.approx(0.7967076, abs=1e-7)


def test_ndcg_ideal_counts_relevant_docs_never_retrieved() -> None:
    # b is relevant but missing from the ranking: IDCG = 1 + 1/log2(3), DCG = 1 -> 0.61315
    assert ndcg_at_k(["a"], {"a": 1, "b": 1}, 10) == pytest.approx(0.6131472, abs=1e-7)
    assert ndcg_at_k(["a", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(1.0)


def test_non_positive_grades_are_not_relevant() -> None:
    qrels = {"a": 0, "b": -1}
    for metric in (ndcg_at_k, recall_at_k, precision_at_k, mrr_at_k):
        assert metric(["a", "b"], qrels, 10) == 0.0


def test_recall_precision_mrr() -> None:
    qrels = {"a": 1, "b": 1, "c": 2, "d": 0}
    ranked = ["d", "a", "x", "c"]
    assert recall_at_k(ranked, qrels, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, qrels, 4) == pytest.approx(2 / 3)
    assert precision_at_k(ranked, qrels, 2) == pytest.approx(1 / 2)
    assert precision_at_k(ranked, qrels, 10) == pytest.approx(2 / 10)  # divides by k, not 4
    assert mrr_at_k(ranked, qrels, 1) == 0.0
    assert mrr_at_k(ranked, qrels, 10) == pytest.approx(1 / 2)


def test_empty_ranking_scores_zero() -> None:
    for metric in (ndcg_at_k, recall_at_k, precision_at_k, mrr_at_k):
        assert metric([], {"a": 1}, 10) == 0.0


def test_rank_orders_by_score_then_docid_descending() -> None:
    hits = [("a", 1.0), ("c", 2.0), ("b", 1.0), ("d", 0.5)]
    assert rank(hits) == ["c", "b", "a", "d"]
    # byte order, as strcmp: "9" > "10"
    assert rank([("10", 1.0), ("9", 1.0)]) == ["9", "10"]


def test_rank_ties_at_float32_precision_like_trec_eval() -> None:
    # trec_eval stores scores as C floats: these two are equal there, so docid decides.
    assert trec_score(1.0 + 1e-10) == trec_score(1.0)
    assert rank([("a", 1.0 + 1e-10), ("b", 1.0)]) == ["b", "a"]
    assert rank([("a", 1.01), ("b", 1.0)]) == ["a", "b"]


def test_rank_rejects_duplicates_and_nan() -> None:
    with pytest.raises(ValueError, match="twice"):
        rank([("a", 1.0), ("a", 0.5)])
    with pytest.raises(ValueError, match="NaN"):
        rank([("a", float("nan"))])


def test_trec_score_saturates_beyond_float32() -> None:
    assert trec_score(1e300) == math.inf
    assert trec_score(-1e300) == -math.inf


def test_evaluate_run_averages_over_judged_queries() -> None:
    qrels = {
        "q1": {"a": 1, "z": 0},
        "q2": {"b": 1},  # absent from the run: counts as 0
        "q3": {"c": 0},  # no relevant doc: not evaluated
    }
    run = {"q1": [("a", 0.9), ("z", 0.1)], "q4": [("a", 1.0)]}  # q4 is not judged: ignored
    result = evaluate_run(run, qrels, ks=(1, 10))
    assert set(result) == {f"{m}@{k}" for m in ("ndcg", "recall", "mrr", "precision") for k in (1, 10)}
    assert result["ndcg@10"] == pytest.approx(0.5)
    assert result["recall@10"] == pytest.approx(0.5)
    assert result["mrr@10"] == pytest.approx(0.5)
    assert result["precision@1"] == pytest.approx(0.5)
    assert result["precision@10"] == pytest.approx(0.05)
    assert set(evaluate_queries(run, qrels, ks=(10,))) == {"q1", "q2"}


def test_evaluate_run_applies_the_tie_break() -> None:
    # Equal scores: "b" outranks "a" by docid, so the relevant "a" is second.
    result = evaluate_run({"q": [("a", 1.0), ("b", 1.0)]}, {"q": {"a": 1}}, ks=(1, 10))
    assert result["mrr@10"] == pytest.approx(0.5)
    assert result["ndcg@1"] == 0.0
    assert result["ndcg@10"] == pytest.approx(1 / LOG3)


def test_evaluate_run_empty_run_is_all_zero() -> None:
    result = evaluate_run({}, {"q": {"a": 1}})
    assert result and all(value == 0.0 for value in result.values())
    assert {"ndcg@10", "recall@10", "recall@100", "mrr@10"} <= set(result)


def test_evaluate_run_needs_a_relevant_judgment() -> None:
    with pytest.raises(InputError, match="no query"):
        evaluate_run({"q": [("a", 1.0)]}, {"q": {"a": 0}})
    with pytest.raises(ValueError, match="positive"):
        evaluate_run({}, {"q": {"a": 1}}, ks=(0,))


def test_percentile_interpolates_linearly() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 95) == pytest.approx(3.85)  # position 0.95 * 3 = 2.85
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile(values, 101)
