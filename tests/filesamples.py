"""Small real files of each kind the attachment rule judges, built here.

Each builder returns the bytes of a minimal but well-formed file: a PDF
with its cross-reference table, a PNG with CRCs, a baseline JFIF header,
a GIF, a BMP and a TIFF with one pixel, a .docx written with zipfile, an
OLE compound file (a .doc, or an encrypted OOXML package) laid out
sector by sector, PE and ELF headers. `pad` makes any of them larger
without changing its kind.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

_FREE, _END, _FATSECT, _NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def pdf(text: str = "Invoice 112-1234567-1234567", encrypted: bool = False, size: int = 0) -> bytes:
    stream = f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    if encrypted:
        objects.append(b"<< /Filter /Standard /V 2 /R 3 /Length 128 /P -1028 "
                       b"/O <00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff> "
                       b"/U <00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff> >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    if size:
        out += b"%" + b"x" * max(0, size - 600) + b"\n"  # a comment line: still a valid PDF
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    extra = b" /Encrypt 5 0 R /ID [<0011> <0011>]" if encrypted else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, extra, xref)
    return bytes(out)


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + chunk(b"IEND", b""))


def jpeg() -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 1, 1, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def gif() -> bytes:
    return (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00"
            b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def bmp() -> bytes:
    pixels = b"\x00\x00\xff\x00"  # one red pixel, row padded to 4 bytes
    info = struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(pixels), 0, 0, 54) + info + pixels


def tiff() -> bytes:
    entries = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 3, 1, 1), (279, 4, 1, 1)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\x00" * 4
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x80"


def docx(text: str = "Return label for order 112-1234567-1234567", macros: bool = False) -> bytes:
    main = ("application/vnd.ms-word.document.macroEnabled.main+xml" if macros else
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml")
    files = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/word/document.xml" ContentType="{main}"/></Types>'),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/officeDocument" Target="word/document.xml"/></Relationships>'),
        "word/document.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            f'<w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>'),
    }
    if macros:
        files["word/vbaProject.bin"] = ole({"VBA": b"\x00" * 64})
    return zip_of(files)


def zip_of(files: dict[str, str | bytes], encrypted_flag: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    data = buffer.getvalue()
    if encrypted_flag:  # set the "encrypted" bit in every local and central header
        out = bytearray(data)
        for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            start = 0
            while (start := out.find(signature, start)) >= 0:
                out[start + offset] |= 0x01
                start += 4
        data = bytes(out)
    return data


def ole(streams: dict[str, bytes], storages: tuple[str, ...] = ()) -> bytes:
    """A version-3 compound file holding `streams` (each padded to 4096 bytes,
    so no mini stream is needed) and empty `storages`, all under the root."""
    entries: list[tuple[str, int, bytes]] = [(name, 2, data.ljust(4096, b"\x00")) for name, data in streams.items()]
    entries += [(name, 1, b"") for name in storages]
    entries.sort(key=lambda e: (len(e[0]), e[0].upper()))
    if len(entries) > 3:
        raise ValueError("one directory sector holds the root and three entries")
    sector = 2  # 0: FAT, 1: directory
    fat = [_FATSECT, _END]
    directory = []
    for index, (name, kind, data) in enumerate(entries, start=1):
        count = len(data) // 512
        start = sector if count else _END
        fat += [sector + i + 1 for i in range(count - 1)] + ([_END] if count else [])
        sector += count
        right = index + 1 if index < len(entries) else _NOSTREAM
        directory.append(_dir_entry(name, kind, _NOSTREAM, right, _NOSTREAM, start, len(data)))
    root = _dir_entry("Root Entry", 5, _NOSTREAM, _NOSTREAM, 1 if entries else _NOSTREAM, _END, 0)
    directory = [root] + directory
    directory += [b"\x00" * 64 + struct.pack("<HBBIII", 0, 0, 0, _NOSTREAM, _NOSTREAM, _NOSTREAM)
                  + b"\x00" * 48] * (4 - len(directory))
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16
              + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\x00" * 6
              + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 0x1000, _END, 0, _END, 0)
              + struct.pack("<I", 0) + struct.pack("<I", _FREE) * 108)
    fat_sector = b"".join(struct.pack("<I", v) for v in fat).ljust(512, b"\xff")
    body = b"".join(data for _, _, data in entries)
    return header + fat_sector + b"".join(directory) + body


def _dir_entry(name: str, kind: int, left: int, right: int, child: int, start: int, size: int) -> bytes:
    encoded = (name + "\x00").encode("utf-16-le")
    return (encoded.ljust(64, b"\x00") + struct.pack("<HBB", len(encoded), kind, 1)
            + struct.pack("<III", left, right, child) + b"\x00" * 16 + b"\x00" * 4 + b"\x00" * 16
            + struct.pack("<IQ", start, size))


def word_doc(encrypted: bool = False, macros: bool = False) -> bytes:
    """A .doc: a compound file with a WordDocument stream starting with a FIB."""
    flags = 0x0100 if encrypted else 0
    fib = struct.pack("<HHHHH", 0xA5EC, 0x00C1, 0, 0, 0) + struct.pack("<H", flags)
    return ole({"WordDocument": fib, "1Table": b""}, storages=("Macros",) if macros else ())


def encrypted_docx() -> bytes:
    """What Word writes for a password-protected .docx: an OLE container."""
    return ole({"EncryptionInfo": b"\x04\x00\x04\x00\x40\x00\x00\x00", "EncryptedPackage": b"\x00" * 16})


def pe() -> bytes:
    stub = bytearray(b"MZ" + b"\x00" * 62)
    stub[0x3C:0x40] = struct.pack("<I", 64)
    return bytes(stub) + b"PE\x00\x00" + struct.pack("<HH", 0x14C, 0) + b"\x00" * 200


def elf() -> bytes:
    return b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + struct.pack("<HHI", 2, 0x3E, 1) + b"\x00" * 40


def pad(data: bytes, size: int) -> bytes:
    """`data` grown to `size` bytes (trailing bytes every reader here ignores)."""
    return data + b"\x00" * max(0, size - len(data))
