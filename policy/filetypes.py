"""What a file is, judged by its content.

`sniff(data)` returns a `FileKind`: the allowed type it is (`pdf`, `word`,
`jpeg`, `png`, `gif`, `bmp`, `tiff`, `text`) or `None` (not one of them),
and a `problem` naming why it cannot pass whatever its name (an
executable, a macro-enabled document, an archive, an encrypted file, a
type not allowed). The magic numbers of the
common types come from puremagic; what a signature alone cannot tell is
checked here by looking inside:

- ZIP: a Word document (OOXML with `word/document.xml`) unless it carries
  `vbaProject.bin` (macros) or encrypted entries; other OOXML (.xlsx,
  .pptx) is not allowed; any other ZIP is an archive;
- OLE (compound file): `EncryptionInfo` is an encrypted OOXML document;
  `Macros`/`VBA` storages are macros; a `WordDocument` stream is a .doc
  (refused if its FIB says encrypted); olefile reads the container;
- PDF: an `/Encrypt` dictionary means encrypted;
- executables (PE, ELF, Mach-O, `#!` scripts) by their first bytes;
- text: no NUL bytes, and decodable (UTF-8, UTF-16 with a BOM, or a
  legacy 8-bit charset with few control characters).

It never raises on any input: a container it cannot read is refused as
"a file that cannot be read".
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import olefile
import puremagic

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_EXECUTABLE_MAGICS = (
    b"MZ", b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"#!", b"\x00asm", b"dex\n",
)
_MIME_KINDS = {
    "application/pdf": "pdf", "image/jpeg": "jpeg", "image/png": "png", "image/gif": "gif",
    "image/bmp": "bmp", "image/x-ms-bmp": "bmp", "image/x-bmp": "bmp", "image/tiff": "tiff",
}
_EXTENSION_KINDS = {".pdf": "pdf", ".jpg": "jpeg", ".jpeg": "jpeg", ".jfif": "jpeg", ".png": "png",
                    ".gif": "gif", ".bmp": "bmp", ".tif": "tiff", ".tiff": "tiff"}
_ARCHIVES = frozenset({".zip", ".rar", ".7z", ".gz", ".tgz", ".bz2", ".xz", ".tar", ".cab", ".zst",
                       ".lz", ".lzma", ".z", ".arj", ".ace", ".iso", ".cbr", ".cb7", ".jar", ".apk"})
_EXECUTABLE_EXTENSIONS = frozenset({".exe", ".dll", ".com", ".msi", ".elf", ".so", ".dylib", ".class",
                                    ".AppImage", ".scr", ".sys", ".drv"})
_SNIFF_BYTES = 64 * 1024
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))


@dataclass(frozen=True)
class FileKind:
    kind: str | None
    problem: str | None = None


EXECUTABLE = FileKind(None, "an executable")
ARCHIVE = FileKind(None, "an archive")
MACROS = FileKind(None, "a document with macros")
ENCRYPTED = FileKind(None, "an encrypted file")
UNREADABLE = FileKind(None, "a file that cannot be read")
OTHER = FileKind(None, "a type that is not allowed")
UNKNOWN = FileKind(None)  # no known signature: the name decides how it is refused


def sniff(data: bytes) -> FileKind:
    if data.startswith(_EXECUTABLE_MAGICS):
        return EXECUTABLE
    if data.startswith(_ZIP_MAGICS):
        return _zip_kind(data)
    if data.startswith(OLE_MAGIC):
        return _ole_kind(data)
    found = _magic(data)
    if found == "pdf":
        return ENCRYPTED if _pdf_encrypted(data) else FileKind("pdf")
    if found is not None:
        return found if isinstance(found, FileKind) else FileKind(found)
    return FileKind("text") if is_text(data) else UNKNOWN


def _magic(data: bytes) -> str | FileKind | None:
    """The allowed kind puremagic sees, a refusal it makes certain, or None."""
    try:
        matches = puremagic.magic_string(data[:_SNIFF_BYTES] + data[-_SNIFF_BYTES:] if len(data) > 2 * _SNIFF_BYTES
                                         else data)
    except Exception:  # puremagic raises PureError (and on odd input, others) when it finds nothing
        return None
    for match in matches:
        kind = _MIME_KINDS.get(match.mime_type) or _EXTENSION_KINDS.get(match.extension.lower())
        if kind is not None and _starts_right(kind, data):
            return kind
    for match in matches:
        if match.extension.lower() in _ARCHIVES and match.confidence >= 0.3:
            return ARCHIVE
        if match.extension in _EXECUTABLE_EXTENSIONS and match.confidence >= 0.4:
            return EXECUTABLE
    return None


def _starts_right(kind: str, data: bytes) -> bool:
    """A match must sit at the start: puremagic also matches footers and offsets."""
    heads = {"pdf": (b"%PDF-",), "jpeg": (b"\xff\xd8\xff",), "png": (b"\x89PNG\r\n\x1a\n",),
             "gif": (b"GIF87a", b"GIF89a"), "bmp": (b"BM",), "tiff": (b"II*\x00", b"MM\x00*")}
    return data.startswith(heads[kind]) or (kind == "pdf" and b"%PDF-" in data[:1024])


def _pdf_encrypted(data: bytes) -> bool:
    # The trailer (or a cross-reference stream) names the /Encrypt dictionary.
    return b"/Encrypt" in data


def _zip_kind(data: bytes) -> FileKind:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            names = {info.filename.lower() for info in infos}
            if any(info.flag_bits & 0x1 for info in infos):
                return ENCRYPTED
            if "[content_types].xml" not in names:
                return ARCHIVE
            if "word/document.xml" not in names:
                return OTHER  # a spreadsheet or presentation
            types = archive.read("[Content_Types].xml").lower() if len(infos) < 10_000 else b""
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, KeyError,
            NotImplementedError, RuntimeError):
        return UNREADABLE
    if any(name.rsplit("/", 1)[-1] == "vbaproject.bin" for name in names) or b"macroenabled" in types:
        return MACROS
    return FileKind("word")


def _ole_kind(data: bytes) -> FileKind:
    try:
        with olefile.OleFileIO(data) as ole:
            entries = ["/".join(path).lower() for path in ole.listdir(streams=True, storages=True)]
            parts = {piece for entry in entries for piece in entry.split("/")}
            if "encryptioninfo" in parts or "encryptedpackage" in parts:
                return ENCRYPTED
            if parts & {"macros", "vba", "_vba_project_cur", "_vba_project"}:
                return MACROS
            if "worddocument" not in parts:
                return OTHER  # a spreadsheet, presentation, installer, ...
            fib = ole.openstream("WordDocument").read(12)
    except Exception:  # olefile raises OSError and others on a damaged container
        return UNREADABLE
    if len(fib) >= 12 and int.from_bytes(fib[10:12], "little") & 0x0100:  # FIB fEncrypted
        return ENCRYPTED
    return FileKind("word")


def is_text(data: bytes) -> bool:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            return False
        return "\x00" not in text
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        pass
    # A legacy 8-bit charset (cp1252, latin-1, ...): decodes always; judge by control bytes.
    sample = data[:_SNIFF_BYTES]
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    return controls * 100 <= len(sample)
