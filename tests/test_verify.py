"""Citation parsing, sentence splitting, support scores and quotes: pure functions."""

from kb.text import numbers, split_sentences
from kb.verify import best_quote, parse_citations, support, swapped_attachment

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
        "Craig v. Boren came first. Then more.": ["Craig v. Boren came first.", "Then more."],
        "Signed by J. Smith on Monday. It costs 5 EUR. Done.": [
            "Signed by J. Smith on Monday.",
            "It costs 5 EUR.",
            "Done.",
        ],
    }
    for text, want in cases.items():
        assert [s.text for s in split_sentences(text)] == want


def test_numbers_compare_after_normalising_their_form():
    from kb.verify import unbacked_numbers

    assert support("They finished with a record of 13-3.", "The team finished with a record of 13–3.") == 1.0
    assert support("Mileage is paid at EUR 0.3 per km.", "Mileage is paid at EUR 0.30 per km.") == 1.0
    assert support("Staff get six months of notice.", "Staff get 6 months of notice.") == 1.0
    assert support("Staff get 6 months of notice.", "Staff get six months of notice.") == 1.0
    assert unbacked_numbers("Cash from operations was $1.8 billion.", "Cash provided by operations 1,824") == set()
    assert unbacked_numbers("Cash from operations was $2.9 billion.", "Cash provided by operations 1,824") == {"2.9"}
    assert support("Staff get 7 months of notice.", "Staff get six months of notice.") == 0.0


def test_prose_citations_are_read_and_removed():
    text, ids = parse_citations("Based on the information provided in Document 1, staff get 28 days.", {1, 2})
    assert (text, ids) == ("Staff get 28 days.", [1])
    assert parse_citations("According to documents 2 and 3, the fee is EUR 5.", {1, 2, 3}) == (
        "The fee is EUR 5.",
        [2, 3],
    )
    assert parse_citations("The fee is EUR 5 (Document 2).", {1, 2}) == ("The fee is EUR 5.", [2])
    assert parse_citations("In 2020 the revenue rose.", {1}) == ("In 2020 the revenue rose.", [])


def test_a_statement_ending_with_a_question_mark_is_still_a_statement():
    from kb.verify import is_question

    assert is_question("How long is the probation period?")
    assert not is_question("The probation period is six months?")


def test_a_claim_that_pairs_a_list_the_other_way_round_is_not_backed():
    passage = "All laptops must use full-disk encryption: BitLocker on Windows and FileVault on macOS."
    # Every word of the wrong claim is in the passage; the pairing is not.
    assert swapped_attachment("BitLocker on macOS.", passage) == "bitlocker on macos"
    assert support("BitLocker on macOS.", passage) == 0.0
    assert support("FileVault on macOS.", passage) == 1.0
    assert swapped_attachment("Macs are encrypted with FileVault.", passage) == ""
    rates = "The daily allowance is EUR 28 for Germany and EUR 52 for London."
    assert swapped_attachment("The allowance is EUR 52 for Germany.", rates) == "52 for germany"
    assert swapped_attachment("The allowance for London is EUR 52.", rates) == ""
