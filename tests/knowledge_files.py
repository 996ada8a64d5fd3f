"""Small real documents made in code for the knowledge tests and bench: PDFs written in PDF syntax with real
text objects, DOCX as a ZIP of WordprocessingML, HTML pages with their chrome, CSV exports."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Sequence

DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def make_pdf(pages: Sequence[str | None], *, declared_count: int | None = None) -> bytes:
    """A PDF with one page per item: its lines as text objects in Helvetica (None: a page without text)."""
    objects: list[bytes] = []

    def add(body: str | bytes) -> int:
        objects.append(body.encode("latin-1") if isinstance(body, str) else body)
        return len(objects)

    catalog = add("")  # filled in below
    tree = add("")
    font = add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    kids = []
    for text in pages:
        lines = (text or "").split("\n") if text else []
        operations = ["BT", "/F1 11 Tf", "14 TL", "56 780 Td"]
        for line in lines:
            operations.append(f"{_pdf_string(line)} Tj T*")
        operations.append("ET")
        stream = "\n".join(operations).encode("latin-1")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(
            add(
                f"<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 595 842] /Contents {content} 0 R"
                f" /Resources << /Font << /F1 {font} 0 R >> >> >>"
            )
        )
    count = len(kids) if declared_count is None else declared_count
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {tree} 0 R >>".encode()
    objects[tree - 1] = f"<< /Type /Pages /Count {count} /Kids [{' '.join(f'{k} 0 R' for k in kids)}] >>".encode()
    return _pdf_file(objects, catalog)


def make_pdf_repeating_one_page(count: int) -> bytes:
    """A page tree of `count` references to one empty page: a million pages in a few megabytes."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count %d /Kids [" % count + b"3 0 R " * count + b"] >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ]
    return _pdf_file(objects, 1)


def _pdf_file(objects: list[bytes], root: int) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref))
    return out.getvalue()


def encrypt_pdf(data: bytes, *, user_password: str, owner_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


_W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
    'wordprocessingml.document.main+xml"/></Types>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'officeDocument" Target="word/document.xml"/></Relationships>'
)
# style ids as a German Word writes them: the heading is known by its name, not its id
_STYLES = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:styles xmlns:w="{_W_NS}">'
    '<w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>'
    '<w:style w:type="paragraph" w:styleId="berschrift2"><w:name w:val="heading 2"/></w:style>'
    '<w:style w:type="paragraph" w:styleId="Titel"><w:name w:val="Title"/></w:style>'
    "</w:styles>"
)
HEADING_STYLES = {0: "Titel", 1: "berschrift1", 2: "berschrift2"}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def docx_paragraph(text: str, heading: int | None = None) -> str:
    style = f'<w:pPr><w:pStyle w:val="{HEADING_STYLES[heading]}"/></w:pPr>' if heading is not None else ""
    return f'<w:p>{style}<w:r><w:t xml:space="preserve">{_escape(text)}</w:t></w:r></w:p>'


def docx_table(rows: Sequence[Sequence[str]]) -> str:
    cells = "".join(
        "<w:tr>" + "".join(f"<w:tc>{docx_paragraph(cell)}</w:tc>" for cell in row) + "</w:tr>" for row in rows
    )
    return f"<w:tbl>{cells}</w:tbl>"


def make_docx(body_xml: str, *, extra_members: int = 0) -> bytes:
    document = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{_W_NS}">'
        f"<w:body>{body_xml}</w:body></w:document>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("word/document.xml", document)
        archive.writestr("word/styles.xml", _STYLES)
        for number in range(extra_members):
            archive.writestr(f"word/media/part{number}.xml", "<x/>")
    return out.getvalue()


def make_docx_bomb(unpacked_bytes: int) -> bytes:
    """A DOCX whose document.xml unpacks to `unpacked_bytes` of spaces (a few hundred KB packed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(f'<w:document xmlns:w="{_W_NS}"><w:body>'.encode())
            piece = b" " * (1024 * 1024)
            for _ in range(unpacked_bytes // len(piece)):
                member.write(piece)
            member.write(b"</w:body></w:document>")
    return out.getvalue()


def understate_sizes(docx: bytes, member: str) -> bytes:
    """The same ZIP with `member`'s uncompressed size declared as 100 bytes (a bomb that lies)."""
    data = bytearray(docx)
    name = member.encode()
    at = data.find(b"PK\x01\x02")
    while at != -1:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46 : at + 46 + name_length]) == name:
            struct.pack_into("<I", data, at + 24, 100)
        at = data.find(b"PK\x01\x02", at + 4)
    return bytes(data)


def make_html(main_text: str, *, with_main: bool = True) -> bytes:
    content = f"<main><h1>Returns</h1><p>{main_text}</p><h2>Refunds</h2><p>Refunds take five days.</p></main>"
    if not with_main:
        content = content.removeprefix("<main>").removesuffix("</main>")
    return (
        "<!DOCTYPE html><html><head><title>Help centre</title><style>body { color: red }</style>"
        "<script>var secret = 'tracking-code';</script></head><body>"
        "<header><a href='/'>Acme home</a></header>"
        "<nav><ul><li><a href='/a'>Navigation link one</a></li><li>Pricing menu</li></ul></nav>"
        f"{content}"
        "<form><label>Subscribe to newsletter</label><input name='email'></form>"
        "<aside>Related sidebar</aside><footer>Copyright footer text</footer>"
        "<script>trackPageView();</script></body></html>"
    ).encode()


def make_csv(rows: int, *, delimiter: str = ",") -> bytes:
    lines = [delimiter.join(["sku", "name", "price", "description"])]
    for number in range(1, rows + 1):
        lines.append(
            delimiter.join(
                [
                    f"SKU-{number:05d}",
                    f"Widget {number}",
                    f"{number * 1.5:.2f}",
                    f'"A sturdy widget, model {number}"',
                ]
            )
        )
    return ("\n".join(lines) + "\n").encode()
