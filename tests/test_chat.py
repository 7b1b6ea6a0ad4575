"""Follow-up rewriting (kb/chat.py) with the scripted LLM, and the LLM queue (kb/server/queue.py)."""

from __future__ import annotations

import threading
import time

import pytest

from kb.answer import Answer, Sentence
from kb.chat import (
    Turn,
    acceptable,
    answer_pieces,
    clean_rewrite,
    needs_rewrite,
    remaining_pieces,
    rewrite,
    sentence_piece,
    split_conversation,
)
from kb.server.queue import Cancelled, LLMQueue, QueueFull
from tests.fakes import ScriptedLLM

HISTORY = [
    Turn("user", "How many days of annual leave do full-time employees get?"),
    Turn("assistant", "Full-time employees receive 28 days of annual leave per year [1]."),
]


def test_a_standalone_question_is_kept_as_asked():
    llm = ScriptedLLM([])
    r = rewrite(HISTORY, "What is the minimum password length for accounts?", llm)
    assert (r.standalone, r.how, r.rewritten) == (
        "What is the minimum password length for accounts?",
        "as asked",
        False,
    )
    assert rewrite([], "and for them?", llm).how == "as asked"  # nothing to lean on
    assert llm.prompts == []


@pytest.mark.parametrize("q", ["and for part-time staff?", "What about contractors?", "Does it apply to them?", "Why?"])
def test_follow_ups_are_recognised(q):
    assert needs_rewrite(HISTORY, q)


def test_a_good_model_rewrite_is_taken_and_shown():
    llm = ScriptedLLM(["Standalone question: How many days of annual leave do part-time staff get?\nExtra line"])
    r = rewrite(HISTORY, "and for part-time staff?", llm)
    assert r.how == "model" and r.standalone == "How many days of annual leave do part-time staff get?"
    prompt = llm.prompts[0][-1]["content"]
    assert "full-time employees get?" in prompt and prompt.endswith(
        "Last question: and for part-time staff?\nStandalone question:"
    )
    assert r.to_json() == {"asked": "and for part-time staff?", "standalone": r.standalone, "how": "model"}


@pytest.mark.parametrize(
    "reply",
    [
        "I don't know.",
        "",
        "and for part-time staff?",  # the follow-up repeated
        "Part-time staff get 14 days [1].",  # an answer, with nothing of the conversation
        "How many days of annual leave do part-time staff get for sabbatical bonus travel pensions?",  # invented words
        "How many days of annual leave do full-time employees get?",  # the follow-up's own words dropped
    ],
)
def test_a_useless_rewrite_falls_back_to_the_previous_question(reply):
    r = rewrite(HISTORY, "and for part-time staff?", ScriptedLLM([reply]))
    assert r.how == "fallback"
    assert r.standalone == "How many days of annual leave do full-time employees get? and for part-time staff?"


def test_no_llm_means_the_fallback():
    assert rewrite(HISTORY, "and for part-time staff?", None).how == "fallback"


def test_rewrite_checks_and_cleaning():
    assert clean_rewrite('  "Rewritten question: What is X?"\nmore') == "What is X?"
    assert acceptable("How many days of annual leave do part-time staff get?", HISTORY, "and for part-time staff?")
    assert not acceptable("Sorry, I cannot.", HISTORY, "and for part-time staff?")


def test_split_conversation():
    history, q = split_conversation(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "First?"},
            {"role": "assistant", "content": "One [1]."},
            {"role": "user", "content": [{"type": "text", "text": "and then?"}]},
        ]
    )
    assert q == "and then?" and [t.role for t in history] == ["user", "assistant"]
    for bad in ([], [{"role": "assistant", "content": "hi"}], [{"role": "user", "content": "  "}]):
        with pytest.raises(ValueError):
            split_conversation(bad)


def test_streamed_sentences_and_what_a_stream_still_owes():
    one = Sentence("Full-time staff get\n28 days.", (1,), True, 0.9)
    two = Sentence("Part-time staff get a share.", (2, 1), True, 0.8)
    assert sentence_piece(one) == "Full-time staff get 28 days. [1]"
    answer = Answer("q", "Full-time staff get 28 days. [1] Part-time staff get a share. [2][1]", False, "generative")
    answer.sentences = [one, two, Sentence("Unbacked.", (), False, 0.1)]
    assert answer_pieces(answer) == ["Full-time staff get 28 days. [1]", "Part-time staff get a share. [2][1]"]
    assert remaining_pieces(answer, []) == answer_pieces(answer)
    assert remaining_pieces(answer, answer_pieces(answer)) == []
    assert remaining_pieces(answer, ["Full-time staff get 28 days. [1]"]) == ["Part-time staff get a share. [2][1]"]
    assert remaining_pieces(answer, ["Something else. [1]"]) == []  # the final answer is authoritative
    refusal = Answer("q", "The documents do not answer this question.", True, "refusal")
    assert remaining_pieces(refusal, []) == [refusal.text]


def test_queue_admits_then_refuses_and_frees_places():
    q = LLMQueue(waiting=1)
    first, second = q.admit(), q.admit()
    with pytest.raises(QueueFull) as full:
        q.admit()
    assert full.value.retry_after >= 1 and q.stats().refused == 1
    with first.run():
        assert q.stats().running == 1 and q.stats().waiting == 1
    second.release()
    third = q.admit()  # places came back
    third.release()
    assert q.stats().served == 1


def test_a_cancelled_waiting_job_leaves_the_queue():
    q = LLMQueue(waiting=1)
    running, waiting = q.admit(), q.admit()
    cancel = threading.Event()
    outcome = []

    def wait_turn():
        try:
            with waiting.run(cancel):
                outcome.append("ran")
        except Cancelled:
            outcome.append("cancelled")

    with running.run():
        t = threading.Thread(target=wait_turn)
        t.start()
        time.sleep(0.1)
        cancel.set()
        t.join(5)
    assert outcome == ["cancelled"] and q.stats().cancelled == 1
    q.admit().release()  # both places are free again
    q.admit().release()
