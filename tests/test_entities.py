"""Names in questions and passages: extraction, mentions (with acronyms), bridges."""

from __future__ import annotations

from kb.answer.entities import Entity, bridge_entities, extract_entities, mentions


def _names(text: str) -> list[tuple[str, str]]:
    return [(e.text, e.kind) for e in extract_entities(text)]


def test_names_of_analyst_questions_leave_out_question_words_and_times():
    assert _names("Does American Water Works have positive working capital based on FY2022 data?") == [
        ("American Water Works", "name")
    ]
    assert _names("Are JnJ's FY2022 financials that of a high growth company?") == [("JnJ", "acronym")]
    assert _names("Did Pfizer grow its PPNE between FY20 and FY21?") == [("Pfizer", "name"), ("PPNE", "acronym")]
    assert _names(
        "According to the 2001 census, what was the population of the city in which Kirton End is located?"
    ) == [("Kirton End", "name")]
    assert _names("How many vacation days do I get per year?") == []


def test_names_keep_their_inner_words_but_punctuation_ends_them():
    assert _names("Is the Bank of the West older than Ludwig van Beethoven?") == [
        ("Bank of the West", "name"),
        ("Ludwig van Beethoven", "name"),
    ]
    assert _names("He lived in Boston, Lincolnshire.") == [("Boston", "name"), ("Lincolnshire", "name")]
    assert ("The Cure", "quoted") in _names('Who sang "The Cure" first?')


def test_mentions_match_phrases_possessives_and_acronyms():
    assert mentions(Entity("American Water Works", "name"), "american water works reported")
    assert not mentions(Entity("General Mills", "name"), "general expenses at the mills")
    assert mentions(Entity("JnJ", "acronym"), "/filings/JOHNSON_JOHNSON_2022_10K.pdf")
    assert mentions(Entity("JnJ", "acronym"), "Johnson & Johnson and its subsidiaries")
    assert mentions(Entity("JPM", "acronym"), "JPMorgan Chase & Co.")
    assert mentions(Entity("JPM", "acronym"), "Jones Parker Moss LLP")
    assert not mentions(Entity("JPM", "acronym"), "Just ask the Post office for Mail")  # initials scattered
    assert not mentions(Entity("PPNE", "acronym"), "Property, plant and equipment")


def test_bridge_names_are_the_ones_the_question_does_not_have():
    evidence = "Kirton End is a hamlet in the civil parish of Kirton in the Boston district of Lincolnshire, England."
    question = "According to the 2001 census, what was the population of the city in which Kirton End is located?"
    assert bridge_entities(evidence, question) == ["Boston", "Lincolnshire"]
    assert bridge_entities(evidence, question, most=1) == ["Boston"]


def test_a_name_is_found_across_punctuation_and_a_possessive_the_question_dropped():
    from kb.answer.entities import Entity, mentions

    rourke = Entity("P J O'Rourke", "name")
    assert mentions(rourke, "P. J. O'Rourke is an American satirist.")
    assert mentions(rourke, "/corpus/P_J_O_Rourke.md")
    pavilion = Entity("Darling Waterfront Pavilion", "name")
    assert mentions(pavilion, "Darling's Waterfront Pavilion is an amphitheatre.")
    assert mentions(pavilion, "Darling_s_Waterfront_Pavilion.md")
    # Still whole words, and symbols stay part of a name.
    assert not mentions(Entity("Mark Spencer", "name"), "Marks Spencer")
    assert not mentions(Entity("C++", "name"), "Vitamin C is sold here.")
