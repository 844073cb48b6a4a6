"""Reading CRM exports: encodings, placeholders, duplicates, blank lines, quoted
commas and time zones. Every data row ends up as a lead, a merged row or a
listed reject. Pure: no servers."""

import csv
from pathlib import Path

import pytest

from starter.csv_leads import CsvFormatError, CsvLeads, write_rejects
from starter.mapping import DEFAULT_MAPPING, LeadMapping, load_mapping

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = load_mapping(DEFAULT_MAPPING)
XEDUCATION = load_mapping(REPO / "mappings" / "xeducation.yaml")

HEADER = "email,external_id,first_name,last_name,time_zone,do_not_email,lead_source"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def read(path: Path, mapping: LeadMapping = EXAMPLE, encoding: str | None = None):
    leads = CsvLeads(path, mapping, encoding)
    scan = leads.scan()
    return scan, list(leads.leads())


def test_utf8_file_with_a_byte_order_mark_reads_its_first_column(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + f"{HEADER}\nada@example.com,A-1,Ad\u00e9le,Quill,,no,Web\n".encode()
    )

    scan, leads = read(path)

    assert scan.encoding == "utf-8-sig"
    assert [lead.email for lead in leads] == ["ada@example.com"]
    assert leads[0].first_name == "Ad\u00e9le"


def test_latin1_bytes_fall_back_to_a_single_byte_encoding(tmp_path: Path) -> None:
    path = write(
        tmp_path / "latin1.csv",
        f"{HEADER}\njose@example.com,J-1,Jos\u00e9,M\u00fcller,,no,Feria\n",
        encoding="latin-1",
    )

    scan, leads = read(path)

    assert scan.encoding == "cp1252"
    assert (leads[0].first_name, leads[0].last_name) == ("Jos\u00e9", "M\u00fcller")


def test_an_encoding_that_cannot_read_the_file_is_a_clear_error(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "latin1.csv",
        f"{HEADER}\njose@example.com,J-1,Jos\u00e9,,,no,\n",
        encoding="latin-1",
    )

    with pytest.raises(CsvFormatError, match="not text in utf-8"):
        CsvLeads(path, EXAMPLE, "utf-8").scan()


def test_emails_differing_only_in_case_or_spaces_merge_into_the_first_row(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "duplicates.csv",
        f"{HEADER}\n"
        "  Ada@Example.COM ,A-1,Ada,,,no,Web\n"
        "bruno@example.com,B-1,Bruno,,,no,Web\n"
        "ada@example.com,,Adeline,Quill,Europe/London,yes,Fair\n",
    )

    scan, leads = read(path)

    assert [lead.email for lead in leads] == ["bruno@example.com", "ada@example.com"]
    ada = leads[1]
    # The first row's values win; the later row fills what the first left empty.
    assert (ada.first_name, ada.last_name) == ("Ada", "Quill")
    assert ada.time_zone == "Europe/London"
    assert ada.attributes["lead_source"] == "Web"
    # Any row saying do-not-email makes the lead do-not-email.
    assert ada.do_not_email is True
    assert [(row.row_number, row.merged_into) for row in scan.merged] == [(4, 2)]
    assert scan.accepted + len(scan.rejected) == scan.data_rows == 3


def test_blank_lines_are_skipped_and_row_numbers_stay_spreadsheet_lines(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "blank.csv",
        f"{HEADER}\n\nada@example.com,A-1,Ada,,,no,Web\n,,,,,,\n\nnot-an-address,B-1,,,,no,\n",
    )

    scan, leads = read(path)

    assert [lead.email for lead in leads] == ["ada@example.com"]
    assert scan.blank_lines == 3
    assert [(row.row_number, row.reason) for row in scan.invalid] == [
        (6, "row 6: email 'not-an-address' is not an address")
    ]


def test_quoted_commas_and_line_breaks_stay_inside_their_field(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "quoted.csv",
        f"{HEADER},notes\n"
        'ada@example.com,A-1,"Quill, Ada",,,no,"Fairs, events","one\ntwo"\n'
        "bruno@example.com,B-1,Bruno,,,no,Web,\n",
    )

    scan, leads = read(path)

    assert leads[0].first_name == "Quill, Ada"
    assert leads[0].attributes == {"lead_source": "Fairs, events", "notes": "one\ntwo"}
    # The quoted line break makes Bruno's row start on line 4.
    assert leads[1].row_number == 4
    assert scan.rejected == []


def test_missing_time_zones_are_accepted_and_unknown_ones_rejected(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "zones.csv",
        f"{HEADER}\n"
        "ada@example.com,A-1,Ada,,,no,Web\n"
        "bruno@example.com,B-1,Bruno,,America/New_York,no,Web\n"
        "chiara@example.com,C-1,Chiara,,Mars/Olympus,no,Web\n",
    )

    scan, leads = read(path)

    assert [(lead.email, lead.time_zone) for lead in leads] == [
        ("ada@example.com", None),
        ("bruno@example.com", "America/New_York"),
    ]
    assert [row.reason for row in scan.invalid] == [
        "row 4: time zone 'Mars/Olympus' is not an IANA time zone such as "
        "'Europe/London'"
    ]


def test_rows_with_too_few_fields_or_bad_consent_are_rejected_with_reasons(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "broken.csv",
        f"{HEADER}\n"
        "ada@example.com,A-1,Ada\n"
        "bruno@example.com,B-1,Bruno,,,maybe,Web\n"
        "chiara@example.com,A-2,Chiara,,,no,Web\n",
    )

    scan, leads = read(path)

    assert [lead.email for lead in leads] == ["chiara@example.com"]
    assert [row.reason for row in scan.invalid] == [
        "row 2 has 3 fields; the header has 7 (an unquoted comma or a cut-off line?)",
        "row 3: do_not_email 'maybe' is neither 'yes' nor 'no'",
    ]


def test_an_external_id_reused_with_another_email_is_rejected(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "ids.csv",
        f"{HEADER}\nada@example.com,X-1,Ada,,,no,\nbruno@example.com,X-1,Bruno,,,no,\n",
    )

    scan, leads = read(path)

    assert [lead.email for lead in leads] == ["ada@example.com"]
    assert scan.invalid[0].reason == (
        "row 3: external id 'X-1' is already used by row 2 with another email"
    )


def test_rejects_file_lists_every_row_that_is_not_a_lead_of_its_own(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "mixed.csv",
        f"{HEADER}\nada@example.com,,,,,no,\nADA@example.com,,,,,no,\nbad,,,,,no,\n",
    )
    scan, _ = read(path)

    write_rejects(tmp_path / "rejects.csv", scan.rejected)

    with (tmp_path / "rejects.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["row", "outcome", "reason"]
    assert [row[:2] for row in rows[1:]] == [["3", "merged"], ["4", "rejected"]]


def test_a_header_without_the_mapped_columns_is_refused_as_a_whole(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "other.csv", "mail,name\nada@example.com,Ada\n")

    with pytest.raises(CsvFormatError, match="no column 'email'"):
        CsvLeads(path, EXAMPLE).scan()


XEDUCATION_HEADER = [
    "Prospect ID",
    "Lead Number",
    "Lead Origin",
    "Lead Source",
    "Do Not Email",
    "Do Not Call",
    "TotalVisits",
    "Total Time Spent on Website",
    "Page Views Per Visit",
    "Last Activity",
    "Country",
    "Specialization",
    "How did you hear about X Education",
    "What is your current occupation",
    "What matters most to you in choosing a course",
    "Lead Profile",
    "City",
    "A free copy of Mastering The Interview",
    "Email",
]


def crm_row(number: int, **values: str) -> list[str]:
    """A made-up lead in the X Education export's columns."""
    row = dict.fromkeys(XEDUCATION_HEADER, "")
    row.update(
        {
            "Prospect ID": f"made-up-{number}",
            "Lead Number": str(number),
            "Do Not Email": "No",
            "Do Not Call": "No",
            "Email": f"person{number}@example.com",
            "Specialization": "Select",
        }
    )
    row.update({key.replace("_", " "): value for key, value in values.items()})
    return [row[column] for column in XEDUCATION_HEADER]


def write_crm(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(XEDUCATION_HEADER)
        writer.writerows(rows)
    return path


def test_crm_mapping_seeds_history_and_suppresses_unsubscribed_and_bounced(
    tmp_path: Path,
) -> None:
    path = write_crm(
        tmp_path / "crm.csv",
        [
            crm_row(1, TotalVisits="7", Last_Activity="Email Opened"),
            crm_row(2, Last_Activity="Unsubscribed"),
            crm_row(3, Last_Activity="Email Bounced", Do_Not_Email="Yes"),
            crm_row(4, **{"Total Time Spent on Website": "920"}),
        ],
    )

    scan, leads = read(path, XEDUCATION)

    first, second, third, fourth = leads
    # Visits are capped at the mapping's five events.
    assert first.history == {"email_open": 1, "page_visit": 5}
    assert (second.unsubscribed, second.bounced) == (True, False)
    assert second.history == {"unsubscribe": 1}
    assert (third.bounced, third.do_not_email) == (True, True)
    assert fourth.history == {"time_on_site": 3}
    # "Select" is the form's placeholder: not an answer, not an attribute.
    assert "specialization" not in first.attributes
    assert first.external_id == "1"
    assert scan.accepted == 4
    assert (scan.do_not_email, scan.unsubscribed_or_bounced) == (1, 2)
    assert scan.seeded_events == 6 + 1 + 1 + 3


def test_crm_mapping_rejects_a_visit_count_that_is_not_a_number(
    tmp_path: Path,
) -> None:
    path = write_crm(tmp_path / "crm.csv", [crm_row(1, TotalVisits="lots")])

    scan, leads = read(path, XEDUCATION)

    assert leads == []
    assert scan.invalid[0].reason == (
        "row 2: TotalVisits 'lots' is not a number of zero or more"
    )


def test_the_example_cohort_reads_with_the_default_mapping() -> None:
    scan, leads = read(REPO / "examples" / "leads.csv")

    assert scan.rejected == []
    assert len(leads) == scan.data_rows == 5
    assert leads[0].attributes == {
        "lead_source": "Reference",
        "occupation": "Working Professional",
    }
    assert [lead.do_not_email for lead in leads].count(True) == 1


def test_a_do_not_email_row_rejected_for_its_external_id_still_suppresses_the_lead(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "conflict.csv",
        f"{HEADER}\n"
        "jo@example.com,EX-7,Jo,Hale,,no,Web\n"
        "jo@example.com,EX-8,Jo,Hale,,yes,Web\n",
    )

    scan, leads = read(path)

    assert [reject.row_number for reject in scan.rejected] == [3]
    assert [lead.email for lead in leads] == ["jo@example.com"]
    assert leads[0].do_not_email


def test_a_reject_names_its_row_once(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.csv",
        f"{HEADER}\nnoatsign,A-1,Ada,,,no,\nada@example.com,A-2,Ada,,,no,\n"
        " ADA@example.com ,A-2,Ada,,,no,\n",
    )

    scan, _ = read(path)

    assert [reject.describe() for reject in scan.rejected] == [
        "row 2: email 'noatsign' is not an address",
        "row 4: same email as row 3 once trimmed and lower-cased; merged into the "
        "lead of row 3",
    ]
