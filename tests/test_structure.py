"""Markdown of every shape advocacy organisations publish becomes a tree of asks."""

import pytest

from tracker.importing import (
    DocumentImportError,
    import_document,
    parse_markdown,
    parse_op_ed,
    short_title,
)
from tracker.structure import plain_text


def tree(markdown):
    """Return {local code: (parent's local code, text)} for the parsed document."""
    parsed = parse_markdown(markdown, document_code="X")
    return {
        r.code.removeprefix("X-"): (r.parent_code.removeprefix("X-"), r.text)
        for r in parsed.recommendations
    }


def by_code(markdown):
    parsed = parse_markdown(markdown, document_code="X")
    return {r.code.removeprefix("X-"): r for r in parsed.recommendations}


def test_recommendation_headings_with_a_dash_become_the_top_level_asks():
    markdown = (
        "# Fixing the asylum system\n\n"
        "## Background\n\nThe backlog has grown for a decade.\n\n"
        "## Recommendation 1 \u2013 Fund more immigration judges\n\n"
        "Judges decide too few cases.\n\n"
        "## Recommendation 2 \u2014 Restore asylum at ports of entry\n\n"
        "- Congress should fund interpreters at every port.\n"
    )
    assert tree(markdown) == {
        "1": ("", "Fund more immigration judges"),
        "2": ("", "Restore asylum at ports of entry"),
        "2.1": ("2", "Congress should fund interpreters at every port."),
    }
    assert by_code(markdown)["1"].note == "Judges decide too few cases."


def test_setext_and_lettered_headings_nest_letters_under_numbers():
    markdown = (
        "Protecting children\n===================\n\n"
        "Recommendation 1: Fund legal representation for children\n"
        "--------------------------------------------------------\n\n"
        "### A. Expand the legal services program to every court\n\n"
        "### B. Train judges in child-sensitive practice\n\n"
        "Recommendation 2: Stop detaining families\n-----------------------------------------\n"
    )
    assert tree(markdown) == {
        "1": ("", "Fund legal representation for children"),
        "1.1": ("1", "Expand the legal services program to every court"),
        "1.2": ("1", "Train judges in child-sensitive practice"),
        "2": ("", "Stop detaining families"),
    }
    assert parse_markdown(markdown, document_code="X").title == "Protecting children"


def test_bold_numbered_lines_are_headings_and_chapters_are_not_asks():
    markdown = (
        "## 1. Background\n\nMigration has changed.\n\n"
        "**1. Expand refugee resettlement.**\n\n"
        "Resettlement fell by half. It should recover.\n\n"
        "**2. Reinstate the Central American Minors program.**\n"
    )
    recommendations = by_code(markdown)
    assert {code: r.text for code, r in recommendations.items()} == {
        "1": "Expand refugee resettlement.",
        "2": "Reinstate the Central American Minors program.",
    }
    assert recommendations["1"].note == "Resettlement fell by half. It should recover."


def test_a_recommendations_section_with_addressee_subsections_and_nested_lists():
    markdown = (
        "# Statement on the border\n\n"
        "We are alarmed. Officials should be ashamed of the numbers.\n\n"
        "- 3,000 people were turned back.\n\n"
        "## Recommendations\n\n"
        "### To the Department of State\n\n"
        "1. Restore refugee processing in the region.\n"
        "   - Reopen the Safe Mobility Offices.\n"
        "     - Hire staff for the Guatemala office.\n"
        "   - Publish processing times.\n"
        "2. **Fund UNHCR registration.**\n\n"
        "### To Congress\n\n"
        "- Appropriate $1 billion for shelters.\n\n"
        "## About us\n\n"
        "- Support our work today.\n"
    )
    recommendations = by_code(markdown)
    assert tree(markdown) == {
        "1": ("", "Restore refugee processing in the region."),
        "1.1": ("1", "Reopen the Safe Mobility Offices."),
        "1.1.1": ("1.1", "Hire staff for the Guatemala office."),
        "1.2": ("1", "Publish processing times."),
        "2": ("", "Fund UNHCR registration."),
        "3": ("", "Appropriate $1 billion for shelters."),
    }
    assert recommendations["1.1.1"].section_title == "To the Department of State"
    assert recommendations["3"].section_title == "To Congress"


def test_lead_in_ending_in_a_colon_makes_its_list_the_asks_and_is_kept():
    markdown = (
        "# KIND urges action for children\n\n"
        "Children arrive alone every day. KIND calls on Congress to:\n\n"
        "- Fund ORR's post-release services;\n"
        "- Guarantee counsel for every unaccompanied child; and\n"
        "- Keep children out of adult detention.\n\n"
        "What will happen to these children?\n\n"
        "> “We cannot wait,” said KIND's president.\n\n"
        "For media inquiries, contact press@example.org or (202) 555-0100.\n"
    )
    recommendations = by_code(markdown)
    assert [r.text for r in recommendations.values()] == [
        "Fund ORR's post-release services;",
        "Guarantee counsel for every unaccompanied child; and",
        "Keep children out of adult detention.",
    ]
    assert {r.lead_in for r in recommendations.values()} == {"KIND calls on Congress to:"}
    assert all(r.parent_code == "" for r in recommendations.values())


def test_an_item_ending_in_a_colon_introduces_its_nested_asks():
    markdown = (
        "## What we ask\n\n"
        "- The administration should:\n"
        "  - End the asylum ban.\n"
        "  - Restore parole programs.\n"
        "- Congress must fund legal aid.\n"
    )
    recommendations = by_code(markdown)
    assert tree(markdown) == {
        "1": ("", "End the asylum ban."),
        "2": ("", "Restore parole programs."),
        "3": ("", "Congress must fund legal aid."),
    }
    assert recommendations["1"].lead_in == "The administration should:"


def test_gao_table_rows_with_a_recommendation_column_are_asks():
    markdown = (
        "# Immigration Detention: ICE Should Improve Oversight\n\n"
        "## Recommendations for Executive Action\n\n"
        "| Agency affected | Recommendation | Status |\n"
        "|---|---|---|\n"
        "| ICE | The Director of ICE should collect data on detention standards. "
        "(Recommendation 1) | Open |\n"
        "| ICE | The Director of ICE should publish inspection results. (Recommendation 2) | "
        "Closed |\n"
    )
    assert tree(markdown) == {
        "1": ("", "The Director of ICE should collect data on detention standards."),
        "2": ("", "The Director of ICE should publish inspection results."),
    }


def test_bold_lead_in_sentence_is_the_ask_and_its_paragraph_the_note():
    markdown = (
        "# Report\n\n"
        "## Policy recommendations\n\n"
        "**Congress should double the number of immigration judges.**\n\n"
        "The courts have 3 million pending cases. Hiring would halve waits.\n\n"
        "**End metering at ports of entry.** Metering leaves people waiting in danger.\n\n"
        "**Over 900,000 people** waited in Mexico last year.\n"
    )
    recommendations = by_code(markdown)
    assert [(r.text, r.note) for r in recommendations.values()] == [
        (
            "Congress should double the number of immigration judges.",
            "The courts have 3 million pending cases. Hiring would halve waits.",
        ),
        ("End metering at ports of entry.", "Metering leaves people waiting in danger."),
    ]


def test_asks_repeated_in_the_summary_and_the_last_chapter_are_imported_once():
    markdown = (
        "# A long report\n\n"
        "## Executive summary\n\n"
        "## Recommendations\n\n"
        "- Restore access to asylum.\n"
        "- Fund shelters in Mexico.\n\n"
        "## Chapter 1: History\n\nMuch background here.\n\n"
        "## Chapter 9: Recommendations\n\n"
        "- **Restore access to asylum.** Ports of entry turn people away.\n"
        "- Fund shelters in Mexico\n"
        "- Expand the CAM program.\n"
    )
    recommendations = by_code(markdown)
    assert [(r.code.removeprefix("X-"), r.text, r.note) for r in recommendations.values()] == [
        ("1", "Restore access to asylum.", "Ports of entry turn people away."),
        ("2", "Fund shelters in Mexico.", ""),
        ("3", "Expand the CAM program.", ""),
    ]


def test_asks_inside_a_recommendations_section_are_preferred_to_those_in_the_background():
    markdown = (
        "# Brief\n\n"
        "In 2019 advocates said:\n\n- Stop family separation.\n\n"
        "## Our asks\n\n- Reunite every separated family.\n"
    )
    assert tree(markdown) == {"1": ("", "Reunite every separated family.")}


def test_a_spanish_statement_with_recomendaciones_and_infinitives():
    markdown = (
        "# Declaración sobre la frontera\n\n"
        "¿Qué pasará con las familias?\n\n"
        "## Recomendaciones\n\n"
        "### Al Gobierno de México\n\n"
        "1. Garantizar el acceso al asilo en la frontera sur.\n"
        "2. **Poner fin a las deportaciones exprés.** Las personas no pueden pedir protección.\n"
        "3. El Congreso debe financiar a la COMAR.\n"
        "4. La COMAR recibió 140.000 solicitudes.\n\n"
        "Para más información: prensa@example.org\n"
    )
    recommendations = by_code(markdown)
    assert [(r.text, r.note) for r in recommendations.values()] == [
        ("Garantizar el acceso al asilo en la frontera sur.", ""),
        ("Poner fin a las deportaciones exprés.", "Las personas no pueden pedir protección."),
        ("El Congreso debe financiar a la COMAR.", ""),
    ]
    assert {r.section_title for r in recommendations.values()} == {"Al Gobierno de México"}


def test_stored_text_has_no_footnote_markers_html_or_markup():
    markdown = (
        "## Recommendations\n\n"
        "- Congress should fund shelters at the border.12 Shelters are full.[^3]\n"
        "- The <em>administration</em> should expand parole<sup>4</sup> for Haitians¹.\n"
        "- **Restore** [asylum](https://example.org) at `ports`.\n"
    )
    assert [r.text for r in by_code(markdown).values()] == [
        "Congress should fund shelters at the border. Shelters are full.",
        "The administration should expand parole for Haitians.",
        "Restore asylum at ports.",
    ]
    assert plain_text("The **U.S.**\\(USCIS\\) said,3 then") == "The U.S.(USCIS) said, then"


def test_titles_are_a_short_clause_cut_at_a_boundary_never_mid_word():
    text = (
        "The Department of Homeland Security should restore access to asylum at every port of "
        "entry, including for people without a CBP One appointment."
    )
    assert short_title(text) == (
        "The Department of Homeland Security should restore access to asylum at every port of entry"
    )
    no_boundary = short_title("Fund " + "interpreters " * 12 + "now.")
    assert no_boundary.endswith("interpreters…")
    assert len(no_boundary) <= 90


def test_a_document_with_no_asks_is_refused():
    with pytest.raises(DocumentImportError, match="No recommendations"):
        parse_markdown(
            "# News\n\nThe minister visited the border.\n\n- **3,000 people** crossed.\n\n"
            "Share this article\n",
            document_code="X",
        )


def test_addressee_subsections_inside_numbered_sections_name_their_asks():
    markdown = (
        "## 1. Restore access to asylum\n\n"
        "### To the Department of Homeland Security\n\n"
        "- End metering at ports of entry.\n\n"
        "### To Congress\n\n"
        "- Fund asylum officers.\n\n"
        "## 2. Protect children\n\n"
        "- Guarantee counsel for children.\n"
    )
    recommendations = by_code(markdown)
    assert tree(markdown) == {
        "1": ("", "Restore access to asylum"),
        "1.1": ("1", "End metering at ports of entry."),
        "1.2": ("1", "Fund asylum officers."),
        "2": ("", "Protect children"),
        "2.1": ("2", "Guarantee counsel for children."),
    }
    assert recommendations["1.1"].section_title == "To the Department of Homeland Security"
    assert recommendations["1.2"].section_title == "To Congress"


def test_a_bare_recommendation_heading_takes_its_text_from_the_next_paragraph():
    markdown = (
        "## Recommendation 1\n\n"
        "**The Secretary of Homeland Security should publish detention data monthly.** "
        "Data are now released once a year.\n\n"
        "## Recommendation 2\n\nThe Director of ICE should end the use of solitary confinement.\n"
    )
    assert [(r.text, r.note) for r in by_code(markdown).values()] == [
        (
            "The Secretary of Homeland Security should publish detention data monthly.",
            "Data are now released once a year.",
        ),
        ("The Director of ICE should end the use of solitary confinement.", ""),
    ]


def test_plain_paragraphs_ask_only_inside_a_recommendations_section():
    markdown = (
        "# Niskanen brief\n\n"
        "Lawmakers should understand the history. It is long.\n\n"
        "**Our recommendations**\n\n"
        "We recommend the following steps.\n\n"
        "Congress should raise the refugee ceiling to 125,000. This would restore capacity.\n\n"
        "Employers have asked for more visas since 2019.\n\n"
        "Double the number of immigration judges at EOIR.\n"
    )
    assert [(r.text, r.note) for r in by_code(markdown).values()] == [
        ("Congress should raise the refugee ceiling to 125,000.", "This would restore capacity."),
        ("Double the number of immigration judges at EOIR.", ""),
    ]


def test_navigation_quotes_and_a_finished_lead_in_are_not_asks():
    markdown = (
        "- [Home](/)\n- [Donate](/donate)\n\n"
        "# Refugees International statement\n\n"
        "RI urges the administration to:\n\n"
        "- Restore the refugee ceiling.\n\n"
        "Those are our asks. Below are related stories.\n\n"
        "- Haiti's crisis deepens\n"
        '- "The administration should act now," said the director.\n'
        "- Call (202) 555-0100 for interviews.\n"
    )
    assert tree(markdown) == {"1": ("", "Restore the refugee ceiling.")}


def test_a_table_without_a_named_column_uses_the_column_that_asks():
    markdown = (
        "## Recommendations\n\n"
        "| # | Ask | Owner |\n|---|---|---|\n"
        "| 1 | Expand parole for Haitians | DHS |\n"
        "| 2 | Congress should fund shelters | Congress |\n"
    )
    assert [r.text for r in by_code(markdown).values()] == [
        "Expand parole for Haitians",
        "Congress should fund shelters",
    ]


def test_bullet_glyphs_copied_from_a_page_are_list_items_without_the_glyph():
    markdown = (
        "## Recommendations\n\n"
        "•**Reopen the Central American Minors program.** It reunited families.\n"
        "• Expand refugee processing in Guatemala.\n\n"
        "- » **Fund legal aid for children.**\n"
    )
    assert [(r.text, r.note) for r in by_code(markdown).values()] == [
        ("Reopen the Central American Minors program.", "It reunited families."),
        ("Expand refugee processing in Guatemala.", ""),
        ("Fund legal aid for children.", ""),
    ]


@pytest.mark.django_db
def test_a_nested_list_document_is_saved_with_its_parents():
    markdown = (
        "# Statement\n\n## What we ask\n\n"
        "1. Restore refugee processing in the region.\n"
        "   - Reopen the Safe Mobility Offices.\n"
        "2. Fund shelters in Mexico.\n"
    )
    document = import_document(
        markdown, code="ST-2025", publisher="Example Institute", filename="statement.md"
    ).document
    stored = {
        r.code: (r.parent.code if r.parent else "", r.text)
        for r in document.recommendations.order_by("position")
    }
    assert stored == {
        "ST-2025-1": ("", "Restore refugee processing in the region."),
        "ST-2025-1.1": ("ST-2025-1", "Reopen the Safe Mobility Offices."),
        "ST-2025-2": ("", "Fund shelters in Mexico."),
    }
    assert document.title == "Statement"


def test_gao_recommendations_listed_after_a_lead_in_lose_their_reference():
    markdown = (
        "## Recommendations for Executive Action\n\n"
        "We are making two recommendations to ICE:\n\n"
        "- The Director of ICE should track detainee transfers. (Recommendation 1)\n"
        "- The Director of ICE should report deaths in custody within 30 days. "
        "(Recommendation 2)\n"
    )
    assert [(r.text, r.lead_in) for r in by_code(markdown).values()] == [
        (
            "The Director of ICE should track detainee transfers.",
            "We are making two recommendations to ICE:",
        ),
        (
            "The Director of ICE should report deaths in custody within 30 days.",
            "We are making two recommendations to ICE:",
        ),
    ]


PRESS_RELEASE = """\
[Home](/) | [About](/about) | [Donate](/donate)

# KIND Urges Congress to Protect Unaccompanied Children

**WASHINGTON, D.C.** - Today, Kids in Need of Defense (KIND) released the following statement.

"Children should never face court alone," said Wendy Young, KIND president. "Congress must act."

Last year, **more than 130,000 children** arrived alone.<sup>1</sup> Many had no lawyer.\u00b2

KIND calls on Congress to:

* **Fund ORR's post-release services** so that every child has a case manager;
* Guarantee legal representation for all unaccompanied children, including:
    * children in ORR custody;
    * children released to sponsors.
* Reject any proposal to weaken the Trafficking Victims Protection Reauthorization Act.

Will Congress act before the end of the year?

###

**For media inquiries**, contact Jane Doe at media@supportkind.org or 202-555-0100.

Share this: [Twitter](https://x.com) [Facebook](https://fb.com)

\u00a9 2024 Kids in Need of Defense
"""


def test_press_release_keeps_only_the_asks_and_an_ask_ending_in_a_colon_keeps_its_parts():
    recommendations = by_code(PRESS_RELEASE)
    assert tree(PRESS_RELEASE) == {
        "1": ("", "Fund ORR's post-release services so that every child has a case manager;"),
        "2": ("", "Guarantee legal representation for all unaccompanied children, including:"),
        "2.1": ("2", "Children in ORR custody;"),
        "2.2": ("2", "Children released to sponsors."),
        "3": (
            "",
            "Reject any proposal to weaken the Trafficking Victims Protection Reauthorization Act.",
        ),
    }
    assert {r.lead_in for r in recommendations.values()} == {"KIND calls on Congress to:"}
    assert {r.section_title for r in recommendations.values()} == {""}


def test_lettered_lists_markdown_does_not_know_and_recommendation_labels():
    markdown = (
        "## Recommendations\n\n"
        "1. **Recommendation 1:** Congress should fund legal aid.\n"
        "2. Expand processing, in particular:\n"
        "   a) reopen offices in Guatemala;\n"
        "   b) hire more officers.\n\n"
        "The administration should:\n\n"
        "a. End metering.\n"
        "b. Restore the asylum ban waiver.\n"
    )
    assert tree(markdown) == {
        "1": ("", "Congress should fund legal aid."),
        "2": ("", "Expand processing, in particular:"),
        "2.1": ("2", "Reopen offices in Guatemala;"),
        "2.2": ("2", "Hire more officers."),
        "3": ("", "End metering."),
        "4": ("", "Restore the asylum ban waiver."),
    }


def test_unnumbered_headings_that_ask_inside_a_recommendations_section_are_asks():
    markdown = (
        "# Report\n\n## Background\n\n### Detention grew\n\nNumbers rose.\n\n"
        "## Recommendations\n\n"
        "### End family detention\n\n"
        "Families were held for months.\n\n"
        "- Release families to case management.\n"
        "- Close the Dilley facility.\n\n"
        "### Restore oversight of detention\n"
    )
    recommendations = by_code(markdown)
    assert tree(markdown) == {
        "1": ("", "End family detention"),
        "1.1": ("1", "Release families to case management."),
        "1.2": ("1", "Close the Dilley facility."),
        "2": ("", "Restore oversight of detention"),
    }
    assert recommendations["1"].note == "Families were held for months."


def test_a_verb_used_as_a_noun_does_not_make_a_bullet_an_ask():
    markdown = (
        "## Recommendations\n\n"
        "- Support for refugees fell by half.\n"
        "- Work authorization is delayed for months.\n"
        "- Report: detention rises again\n"
        "- Support refugee resettlement agencies.\n"
    )
    assert tree(markdown) == {"1": ("", "Support refugee resettlement agencies.")}


def test_plain_bullets_under_numbered_headings_are_their_parts():
    markdown = (
        "## 1. Restore access to asylum\n\n"
        "Congress should:\n\n"
        "- End metering at ports of entry.\n"
        "- Fund asylum officers.\n\n"
        "## 2. Protect children\n"
    )
    assert tree(markdown) == {
        "1": ("", "Restore access to asylum"),
        "1.1": ("1", "End metering at ports of entry."),
        "1.2": ("1", "Fund asylum officers."),
        "2": ("", "Protect children"),
    }


def test_decimal_numbered_headings_nest_under_their_chapter():
    markdown = (
        "## 1. Restore access to asylum\n\n"
        "### 1.1 End metering at ports of entry\n\n"
        "### 1.2 Fund asylum officers\n\n"
        "## 2. Protect children\n"
    )
    assert tree(markdown) == {
        "1": ("", "Restore access to asylum"),
        "1.1": ("1", "End metering at ports of entry"),
        "1.2": ("1", "Fund asylum officers"),
        "2": ("", "Protect children"),
    }


def test_items_without_words_are_skipped_not_a_crash():
    with pytest.raises(DocumentImportError, match="No recommendations"):
        parse_markdown("## Recommendations\n\n- \u2026\n- 42\n", document_code="X")


def test_bold_addressee_lines_are_subsections():
    markdown = (
        "## Recommendations\n\n"
        "**To the Department of State:**\n\n"
        "- Resume refugee processing in Guatemala.\n\n"
        "**To Congress:**\n\n"
        "- Fund the Office of Refugee Resettlement.\n"
    )
    assert [(r.text, r.section_title) for r in by_code(markdown).values()] == [
        ("Resume refugee processing in Guatemala.", "To the Department of State:"),
        ("Fund the Office of Refugee Resettlement.", "To Congress:"),
    ]


def test_a_paragraph_inside_a_list_item_is_its_note():
    markdown = (
        "## Our asks\n\n"
        "1. **Fund legal representation for children.**\n\n"
        "   Children with lawyers win their cases five times as often.\n\n"
        "2. Expand the Central American Minors program.\n"
    )
    assert [(r.text, r.note) for r in by_code(markdown).values()] == [
        (
            "Fund legal representation for children.",
            "Children with lawyers win their cases five times as often.",
        ),
        ("Expand the Central American Minors program.", ""),
    ]


@pytest.mark.django_db
def test_a_plain_text_statement_without_headings_takes_its_title_from_its_first_title_line():
    text = (
        "EMBARGOED UNTIL 9 AM\n"
        "March 3, 2026\n\n"
        "Contact:\n"
        "Press Office\n\n"
        "River Alliance Asks Lawmakers to Protect Border Shelters\n\n"
        "The alliance asks Congress to:\n\n"
        "- Fund shelters along the border for families waiting for hearings.\n"
        "- Restore legal aid for children who arrive alone.\n\n"
        "###\n"
    )
    document = import_document(
        text.encode(), code="RA-2026", publisher="River Alliance", filename="statement.txt"
    ).document
    assert document.title == "River Alliance Asks Lawmakers to Protect Border Shelters"
    assert document.recommendations.count() == 2


def test_bold_numbered_titles_run_into_their_paragraph_are_asks_with_the_rest_as_note():
    markdown = (
        "# Memo\n\nWe see three steps.\n\n"
        "**1. Hire more asylum officers.** Backlogs have tripled since 2020.\n\n"
        "**2. Publish wait times.** Families cannot plan without them.\n\n"
        "**3. Lobby the courts.** Every family deserves a lawyer.\n"
    )
    recommendations = by_code(markdown)
    assert [(r.text, r.note) for r in recommendations.values()] == [
        ("Hire more asylum officers.", "Backlogs have tripled since 2020."),
        ("Publish wait times.", "Families cannot plan without them."),
        ("Lobby the courts.", "Every family deserves a lawyer."),
    ]


def test_a_bold_list_item_titled_without_a_verb_asks_when_its_explanation_asks():
    markdown = (
        "# Memo\n\n"
        "1. **Hire more asylum officers.** Backlogs have tripled since 2020.\n"
        "2. **A fair hearing for all.** Courts should give every family a lawyer.\n\n"
        "- **Detention grew.** It doubled in two years.\n"
    )
    assert [r.text for r in by_code(markdown).values()] == [
        "Hire more asylum officers.",
        "A fair hearing for all.",
    ]


def test_an_op_ed_step_keeps_its_asking_sentences_and_its_explanation_becomes_the_note():
    text = (
        "Fix the courts\n\nBy Ana Ruiz\n\n"
        "First, Congress should hire more judges. Cases now wait five years.\n\n"
        "Second, the courts need interpreters. Each court should keep two on staff.\n\n"
        "Finally, states should fund legal aid for children.\n"
    )
    steps = parse_op_ed(text, document_code="X").recommendations
    assert [(r.text, r.note) for r in steps] == [
        ("Congress should hire more judges.", "Cases now wait five years."),
        ("The courts need interpreters. Each court should keep two on staff.", ""),
        ("States should fund legal aid for children.", ""),
    ]


def test_a_listed_ask_opening_with_a_verb_we_do_not_list_is_found_in_a_recommendations_section():
    markdown = (
        "# Brief\n\n## Background\n\n- Visit the archive for the data.\n\n"
        "## Recommendations\n\n"
        "- Reopen the shelters in Tijuana.\n"
        "- Lobby the regional governments to share asylum data.\n"
        "- In the meantime, nothing changes.\n"
    )
    assert [r.text for r in by_code(markdown).values()] == [
        "Reopen the shelters in Tijuana.",
        "Lobby the regional governments to share asylum data.",
    ]


def test_numbered_titles_underlined_as_setext_headings_hold_the_bullets_below_them():
    markdown = (
        "Border Brief\n============\n\n"
        "1. Train officers in trauma-informed interviews\n"
        "-----------------------------------------------\n\n"
        "- ICE should fund the training every year.\n\n"
        "2. Reunite separated families\n"
        "-----------------------------\n\n"
        "- HHS should track every child in its care.\n"
    )
    assert tree(markdown) == {
        "1": ("", "Train officers in trauma-informed interviews"),
        "1.1": ("1", "ICE should fund the training every year."),
        "2": ("", "Reunite separated families"),
        "2.1": ("2", "HHS should track every child in its care."),
    }


def test_a_numbered_heading_opening_like_a_command_with_a_verb_we_do_not_list_asks():
    markdown = "# Brief\n\n## 1. Lobby the states for shelter funds\n\n## 2. Background\n"
    assert tree(markdown) == {"1": ("", "Lobby the states for shelter funds")}
