"""parse_document on real files the tests make: every format, and every bad input of issue 24."""

from __future__ import annotations

import random
import time
import tracemalloc

import pytest

from oneai.knowledge.parsing import DocumentKind, DocumentUnreadableError, ParsingLimits, parse_document
from tests.knowledge_files import (
    DOCX_MEDIA_TYPE,
    docx_paragraph,
    docx_table,
    encrypt_pdf,
    make_csv,
    make_docx,
    make_docx_bomb,
    make_html,
    make_pdf,
    make_pdf_repeating_one_page,
    understate_sizes,
)

MIB = 1024 * 1024


def reason_of(data: bytes, media_type: str, filename: str, limits: ParsingLimits | None = None) -> str:
    with pytest.raises(DocumentUnreadableError) as caught:
        if limits is None:
            parse_document(data, media_type, filename)
        else:
            parse_document(data, media_type, filename, limits)
    return caught.value.reason


# --- every format -----------------------------------------------------------------------------------


def test_a_pdf_keeps_each_page_text_under_its_page_number() -> None:
    data = make_pdf(["Opening hours are nine to five.", None, "Refunds take five days.\nCall us first."])

    document = parse_document(data, "application/pdf", "guide.pdf")

    assert document.kind is DocumentKind.PDF
    assert document.pages == 3
    assert [(block.page, block.text) for block in document.blocks] == [
        (1, "Opening hours are nine to five."),
        (3, "Refunds take five days.\nCall us first."),
    ]


def test_a_docx_gives_paragraphs_headings_as_sections_and_tables_as_text() -> None:
    body = (
        docx_paragraph("Staff handbook", heading=0)
        + docx_paragraph("Leave", heading=1)
        + docx_paragraph("Everyone gets 25 days of leave.")
        + docx_table([["Grade", "Days"], ["Junior", "25"], ["Senior", "30"]])
        + docx_paragraph("Sick leave", heading=2)
        + docx_paragraph("Tell your manager by 9 am.")
    )

    document = parse_document(make_docx(body), DOCX_MEDIA_TYPE, "handbook.docx")

    assert document.title == "Staff handbook"
    assert [(block.kind, block.text, block.section) for block in document.blocks] == [
        ("heading", "Staff handbook", ("Staff handbook",)),
        ("heading", "Leave", ("Staff handbook", "Leave")),
        ("paragraph", "Everyone gets 25 days of leave.", ("Staff handbook", "Leave")),
        ("table", "Grade | Days\nJunior | 25\nSenior | 30", ("Staff handbook", "Leave")),
        ("heading", "Sick leave", ("Staff handbook", "Leave", "Sick leave")),
        ("paragraph", "Tell your manager by 9 am.", ("Staff handbook", "Leave", "Sick leave")),
    ]


@pytest.mark.parametrize("with_main", [True, False], ids=["main-element", "no-main-element"])
def test_html_keeps_the_main_text_without_navigation_scripts_styles_forms_or_chrome(with_main: bool) -> None:
    document = parse_document(
        make_html("Return items within 30 days.", with_main=with_main), "text/html", "help.html"
    )

    text = "\n".join(block.text for block in document.blocks)
    assert document.title == "Help centre"
    assert [(block.kind, block.text, block.section) for block in document.blocks] == [
        ("heading", "Returns", ("Returns",)),
        ("paragraph", "Return items within 30 days.", ("Returns",)),
        ("heading", "Refunds", ("Returns", "Refunds")),
        ("paragraph", "Refunds take five days.", ("Returns", "Refunds")),
    ]
    for left_out in ("tracking", "color", "Navigation", "Pricing", "Acme home", "newsletter", "sidebar", "footer"):
        assert left_out not in text


def test_markdown_headings_become_sections_and_code_fences_stay_whole() -> None:
    data = b"# Guide\n\nIntro text.\n\n## Install\n\nRun this:\n\n```\n# not a heading\npip install x\n```\n\nSetext\n------\n\nLast words.\n"

    document = parse_document(data, "text/markdown", "guide.md")

    assert [(block.kind, block.text, block.section) for block in document.blocks] == [
        ("heading", "Guide", ("Guide",)),
        ("paragraph", "Intro text.", ("Guide",)),
        ("heading", "Install", ("Guide", "Install")),
        ("paragraph", "Run this:", ("Guide", "Install")),
        ("paragraph", "```\n# not a heading\npip install x\n```", ("Guide", "Install")),
        ("heading", "Setext", ("Guide", "Setext")),
        ("paragraph", "Last words.", ("Guide", "Setext")),
    ]


def test_text_is_split_into_paragraphs_at_blank_lines() -> None:
    document = parse_document(b"First paragraph\nstill first.\n\n\nSecond one.\r\n", "text/plain", "notes.txt")

    assert [block.text for block in document.blocks] == ["First paragraph\nstill first.", "Second one."]


def test_a_csv_gives_its_header_and_one_block_per_row() -> None:
    document = parse_document(make_csv(3, delimiter=";"), "text/csv", "stock.csv")

    assert document.csv_header == "sku;name;price;description"
    assert [block.text for block in document.blocks] == [
        "SKU-00001;Widget 1;1.50;A sturdy widget, model 1",
        "SKU-00002;Widget 2;3.00;A sturdy widget, model 2",
        "SKU-00003;Widget 3;4.50;A sturdy widget, model 3",
    ]


def test_generic_or_loose_media_types_defer_to_the_extension() -> None:
    assert parse_document(make_csv(1), "application/vnd.ms-excel", "excel-export.csv").kind is DocumentKind.CSV
    assert parse_document(b"# T\n\nx", "application/octet-stream", "readme.md").kind is DocumentKind.MARKDOWN
    assert parse_document(b"# T\n\nx", "text/plain; charset=utf-8", "readme.md").kind is DocumentKind.MARKDOWN


# --- bad input: each a clear reason, never a crash -------------------------------------------------


def test_an_empty_file_is_refused() -> None:
    assert reason_of(b"", "application/pdf", "a.pdf") == "the file is empty"


def test_a_file_over_the_size_limit_is_refused_before_it_is_read() -> None:
    assert reason_of(b"a" * (20 * MIB + 1), "text/plain", "big.txt") == "the file is over the 20 MiB limit"


@pytest.mark.parametrize(
    ("data", "media_type", "filename", "expected"),
    [
        (make_pdf(["text"]), DOCX_MEDIA_TYPE, "report.docx", "the file is not a valid DOCX: it is a PDF"),
        (
            make_docx(docx_paragraph("x")),
            "application/pdf",
            "report.pdf",
            "the file is not a valid PDF: it is a ZIP",
        ),
        (make_pdf(["text"]), "text/plain", "notes.txt", "the file is a PDF, not a text file"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "text/csv", "data.csv", "the file is a PNG image, not a CSV file"),
        (b"plain words", "application/pdf", "a.pdf", "the file is not a valid PDF"),
        (b"plain words", "text/html", "a.pdf", "the file's name says a PDF but its type says an HTML page"),
        (b"plain words", "image/png", "a.txt", "the file's name says a text file but its type is image/png"),
        (b"plain words", "text/plain", "slides.pptx", "this file type is not supported"),
    ],
    ids=[
        "pdf-as-docx",
        "docx-as-pdf",
        "pdf-as-txt",
        "png-as-csv",
        "text-as-pdf",
        "name-vs-type",
        "image-type",
        "pptx",
    ],
)
def test_content_that_disagrees_with_its_name_or_type_is_refused(
    data: bytes, media_type: str, filename: str, expected: str
) -> None:
    assert reason_of(data, media_type, filename).startswith(expected)


def test_an_encrypted_pdf_is_refused_as_encrypted() -> None:
    data = encrypt_pdf(make_pdf(["Secret plans."]), user_password="letmein", owner_password="boss")

    assert reason_of(data, "application/pdf", "secret.pdf") == (
        "the file is encrypted: remove its password and upload it again"
    )


def test_a_pdf_with_only_an_owner_password_is_read() -> None:
    data = encrypt_pdf(
        make_pdf(["Printing is restricted, reading is not."]), user_password="", owner_password="boss"
    )

    document = parse_document(data, "application/pdf", "restricted.pdf")

    assert [block.text for block in document.blocks] == ["Printing is restricted, reading is not."]


def test_a_scanned_like_pdf_without_text_fails_with_that_reason() -> None:
    reason = reason_of(make_pdf([None] * 300), "application/pdf", "scan.pdf")

    assert reason.startswith("this PDF has no text layer: it looks scanned")


def test_a_million_empty_pages_are_refused_quickly_without_walking_them() -> None:
    data = make_pdf_repeating_one_page(1_000_000)
    assert len(data) < 20 * MIB

    started = time.monotonic()
    reason = reason_of(data, "application/pdf", "million.pdf")

    assert reason == "the PDF is too large or complex to read"
    assert time.monotonic() - started < 10


def test_a_pdf_over_the_page_cap_is_refused_by_its_declared_count() -> None:
    assert reason_of(make_pdf_repeating_one_page(5000), "application/pdf", "long.pdf") == (
        "the PDF has 5,000 pages, over the limit of 2,000"
    )


def test_a_page_tree_that_understates_its_count_is_stopped_at_the_page_cap() -> None:
    data = make_pdf([None] * 60, declared_count=1)

    reason = reason_of(data, "application/pdf", "liar.pdf", ParsingLimits(max_pdf_pages=50))

    assert reason == "the PDF has over 50 pages"


def test_a_slow_pdf_is_stopped_by_the_time_budget_between_pages() -> None:
    reason = reason_of(make_pdf(["words"] * 50), "application/pdf", "slow.pdf", ParsingLimits(max_seconds=1e-9))

    assert reason.startswith("reading the PDF took over")


def test_a_damaged_pdf_is_refused_as_not_valid() -> None:
    data = make_pdf(["Some text that will be cut off."])

    assert (
        reason_of(data[:60], "application/pdf", "cut.pdf")
        == "the file is not a valid PDF (it is damaged or incomplete)"
    )


def test_a_zip_bomb_docx_is_refused_from_its_declared_sizes_before_unpacking() -> None:
    data = make_docx_bomb(150 * MIB)
    assert len(data) < MIB

    tracemalloc.start()
    try:
        reason = reason_of(data, DOCX_MEDIA_TYPE, "bomb.docx")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert reason == "the DOCX unpacks to over 100 MiB: it is refused as a zip bomb"
    assert peak < 8 * MIB


def test_a_zip_bomb_docx_that_lies_about_its_sizes_is_stopped_while_unpacking() -> None:
    data = understate_sizes(make_docx_bomb(30 * MIB), "word/document.xml")

    tracemalloc.start()
    try:
        reason = reason_of(data, DOCX_MEDIA_TYPE, "liar.docx", ParsingLimits(max_unzipped_bytes=4 * MIB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert reason.startswith("the file is not a valid DOCX") or "zip bomb" in reason
    assert peak < 16 * MIB


def test_a_docx_with_too_many_members_is_refused() -> None:
    data = make_docx(docx_paragraph("x"), extra_members=30)

    reason = reason_of(data, DOCX_MEDIA_TYPE, "many.docx", ParsingLimits(max_zip_members=20))

    assert reason == "the file is not a valid DOCX: it holds 34 files, over the limit of 20"


def test_an_encrypted_or_legacy_word_file_named_docx_is_refused_as_such() -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512

    assert reason_of(ole, DOCX_MEDIA_TYPE, "locked.docx").startswith("the file is encrypted or in the old Word")


def test_a_zip_that_is_not_a_word_document_is_refused() -> None:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.txt", "hello")

    assert reason_of(out.getvalue(), DOCX_MEDIA_TYPE, "a.docx") == (
        "the file is not a valid DOCX: it has no document body (word/document.xml)"
    )


def test_a_docx_with_entity_declarations_is_refused() -> None:
    data = make_docx(docx_paragraph("x")).replace(b"", b"")
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name == "word/document.xml":
                content = b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]>' + content.split(b"?>", 1)[1]
            target.writestr(name, content)

    assert "declares entities" in reason_of(out.getvalue(), DOCX_MEDIA_TYPE, "laughs.docx")


def test_a_csv_with_one_giant_line_is_refused_quickly_and_in_bounded_memory() -> None:
    giant = b"id,notes\n1," + b"ab," * (6 * MIB) + b"\n"

    tracemalloc.start()
    started = time.monotonic()
    try:
        reason = reason_of(giant, "text/csv", "giant.csv")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert reason == "line 2 of the CSV is longer than 131,072 characters"
    assert time.monotonic() - started < 5
    assert peak < 64 * MIB


def test_a_fifty_megabyte_csv_line_is_over_the_size_limit() -> None:
    assert reason_of(b"a," * (25 * MIB), "text/csv", "fifty.csv") == "the file is over the 20 MiB limit"


def test_a_csv_row_with_too_many_columns_is_refused() -> None:
    data = b"h\n" + b",".join([b"x"] * 1500) + b"\n"

    assert reason_of(data, "text/csv", "wide.csv") == "row 2 of the CSV has 1,500 columns, over the limit of 1,000"


def test_invalid_utf8_falls_back_to_windows_1252() -> None:
    data = "Café “quoted” — 5 €".encode("cp1252")

    document = parse_document(data, "text/plain", "legacy.txt")

    assert document.blocks[0].text == "Café “quoted” — 5 €"


def test_bytes_undefined_in_windows_1252_fall_back_to_latin1_instead_of_failing() -> None:
    document = parse_document(b"caf\xe9 \x81 end", "text/plain", "odd.txt")

    assert document.blocks[0].text == "café \x81 end"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_a_byte_order_mark_decides_the_encoding(encoding: str) -> None:
    document = parse_document("name,city\nZoë,Kraków\n".encode(encoding), "text/csv", "people.csv")

    assert document.csv_header == "name,city"
    assert [block.text for block in document.blocks] == ["Zoë,Kraków"]


def test_nul_bytes_are_stripped_from_every_format() -> None:
    text = parse_document(b"Hello\x00 world", "text/plain", "a.txt").blocks[0].text
    html = parse_document(b"<p>Hel\x00lo</p>", "text/html", "a.html").blocks[0].text
    pdf = parse_document(make_pdf(["A nul\x00l inside a PDF string"]), "application/pdf", "a.pdf").blocks[0].text
    csv_row = parse_document(b"a,b\nx\x00,y\n", "text/csv", "a.csv").blocks[0].text

    assert (text, html, pdf, csv_row) == ("Hello world", "Hello", "A null inside a PDF string", "x,y")


def test_nul_bytes_in_a_docx_xml_are_refused_as_damaged_xml() -> None:
    # XML 1.0 has no NUL character: Word never writes one, so the part is damaged (or UTF-16, refused too)
    reason = reason_of(make_docx(docx_paragraph("Nul\x00l")), DOCX_MEDIA_TYPE, "a.docx")

    assert reason.startswith("the file is not a valid DOCX")


def test_binary_noise_named_txt_is_refused_as_not_text() -> None:
    noise = bytes(range(1, 32)) * 100

    assert reason_of(noise, "text/plain", "noise.txt") == "the file does not look like text: it holds binary data"


@pytest.mark.parametrize(
    ("data", "media_type", "filename"),
    [
        (b"   \n\n\t ", "text/plain", "blank.txt"),
        (b"<nav>only menus</nav><script>x()</script>", "text/html", "chrome.html"),
        (b"\n\n", "text/csv", "blank.csv"),
    ],
)
def test_files_without_readable_text_fail_with_a_reason(data: bytes, media_type: str, filename: str) -> None:
    assert reason_of(data, media_type, filename)


@pytest.mark.parametrize(
    ("data", "media_type", "filename"),
    [
        (make_pdf(["Opening hours are nine to five.", "Refunds take five days."]), "application/pdf", "a.pdf"),
        (make_docx(docx_paragraph("Leave", heading=1) + docx_table([["a", "b"]])), DOCX_MEDIA_TYPE, "a.docx"),
        (make_html("Return items within 30 days."), "text/html", "a.html"),
        (make_csv(20), "text/csv", "a.csv"),
        (b"# Title\n\n```\ncode\n```\n\ntext\n", "text/markdown", "a.md"),
    ],
    ids=["pdf", "docx", "html", "csv", "markdown"],
)
def test_damaged_files_fail_with_a_reason_never_another_exception(
    data: bytes, media_type: str, filename: str
) -> None:
    generator = random.Random(24)
    variants = [data[:cut] for cut in range(1, len(data), max(1, len(data) // 40))]
    for _ in range(400):
        flipped = bytearray(data)
        for _ in range(generator.randint(1, 8)):
            flipped[generator.randrange(len(flipped))] = generator.randrange(256)
        variants.append(bytes(flipped))

    reasons = []
    for variant in variants:
        try:
            parse_document(variant, media_type, filename)
        except DocumentUnreadableError as error:
            reasons.append(error.reason)
    assert reasons, "the damage was noticed"
    assert all(reasons)


def test_deeply_nested_html_with_stray_end_tags_is_read_in_linear_time() -> None:
    data = b"<p>Deep text.</p>" + b"<span>" * 200_000 + b"</b>" * 200_000 + b"<p>After.</p>"

    started = time.monotonic()
    document = parse_document(data, "text/html", "deep.html")

    assert time.monotonic() - started < 10
    assert [block.text for block in document.blocks] == ["Deep text.", "After."]
