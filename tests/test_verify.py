"""Citation parsing, sentence splitting, support scores and quotes: pure functions."""

from kb.verify import best_quote, numbers, parse_citations, split_sentences, support

PASSAGE = (
    "Annual leave. Full-time employees receive 28 days of paid annual leave per year. "
    "Up to 5 unused days may be carried over. Carried-over days must be taken by 31 March."
)


def test_split_sentences_keeps_offsets():
    spans = split_sentences(PASSAGE)
    assert len(spans) == 4
    for s in spans:
        assert PASSAGE[s.start : s.end] == s.text


def test_parse_citations_drops_unknown_ids():
    text, ids = parse_citations("Staff get 28 days [1][7] of leave [2, 3].", valid={1, 2})
    assert text == "Staff get 28 days of leave."
    assert ids == [1, 2]
    text, ids = parse_citations("Staff get 28 days [Source 2] of leave [source 1; Source 2].", valid={1, 2})
    assert text == "Staff get 28 days of leave." and ids == [2, 1]
    assert parse_citations("The term [sic] stays.", valid={1}) == ("The term [sic] stays.", [])


def test_support_requires_numbers_present():
    assert support("Employees receive 28 days of annual leave.", PASSAGE) > 0.8
    assert support("Employees receive 30 days of annual leave.", PASSAGE) == 0.0
    assert numbers("EUR 1,200 and 99.9%") == {"1200", "99.9"}


def test_support_is_low_for_unrelated_claims():
    assert support("The canteen serves vegan lunch on Fridays.", PASSAGE) < 0.3


def test_best_quote_is_verbatim_with_offsets():
    q = best_quote("unused days must be taken by 31 March", PASSAGE)
    assert PASSAGE[q.start : q.end] == q.text
    assert "31 March" in q.text


def test_titles_abbreviations_and_initials_do_not_end_sentences():
    cases = {
        "Please contact Dr. Weber in HR. She helps.": ["Please contact Dr. Weber in HR.", "She helps."],
        "Smith et al. (2019) showed it. Then more.": ["Smith et al. (2019) showed it.", "Then more."],
        "Use e.g. Windows. Next one.": ["Use e.g. Windows.", "Next one."],
        "Signed by J. Smith on Monday. It costs 5 EUR. Done.": [
            "Signed by J. Smith on Monday.",
            "It costs 5 EUR.",
            "Done.",
        ],
    }
    for text, want in cases.items():
        assert [s.text for s in split_sentences(text)] == want
