"""APKINDEX.tar.gz: read, verify, write and sign repository indexes.

Layout: an optional signature member whose signatures cover *all raw bytes after it*, then one
gzip member holding a closed tar with `APKINDEX` (and optionally `DESCRIPTION`).
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from distroless.apk import keys, signature
from distroless.apk.gzmember import gzip_member, inflate_members
from distroless.apk.model import Package
from distroless.errors import FormatError, LimitError, VerificationError
from distroless.tarball import END_OF_ARCHIVE, Header, encode_header, padding

INDEX_CAP = 300 << 20  # apko's default decompressed-index limit
# Each record becomes a Package (about 1 KB): bound their number whatever the key that signed it.
MAX_INDEX_PACKAGES = 1_000_000

# Letters apk-tools understands; an unknown upper-case letter would make apk-tools 2 mark the
# package uninstallable, so the writer emits only these, in apk-tools' order.
_TEXT = {"P": "name", "V": "version", "A": "arch", "T": "description", "U": "url", "L": "license",
         "o": "origin", "m": "maintainer", "c": "commit", "C": "checksum"}
_INT = {"S": "size", "I": "installed_size", "t": "build_time", "k": "provider_priority"}
_LIST = {"D": "depends", "p": "provides", "i": "install_if"}


@dataclass(slots=True)
class Index:
    packages: list[Package]
    description: str
    signatures: list[signature.Signature]
    verified_by: list[str]


# apk-tools writes letters in one order; records in that order are parsed by one C-speed regex,
# anything else (melange's order, unknown letters) by the general path below.
_FAST = re.compile(
    r"C:(.*)\nP:(.*)\nV:(.*)\nA:(.*)\nS:(\d+)\nI:(\d+)\nT:(.*)\nU:(.*)\nL:(.*)\n"
    r"(?:o:(.*)\n)?(?:m:(.*)\n)?(?:t:(\d+)\n)?(?:c:(.*)\n)?(?:k:(\d+)\n)?"
    r"(?:D:(.*)\n)?(?:p:(.*)\n)?(?:i:(.*)\n)?\n+"
)


def parse_text(text: str, source: str, repository: str = "", pin: str = "") -> list[Package]:
    """Parse APKINDEX text: blank-line separated records of `X:value` lines. Records without P are dropped."""
    packages: list[Package] = []
    append = packages.append
    pos = 0
    for m in _FAST.finditer(text):
        if m.start() != pos:
            packages.extend(_parse_slow(text, pos, m.start(), source, repository, pin))
        pos = m.end()
        C, P, V, A, S, I, T, U, L, o, mt, t, c, k, D, p, i = m.groups()
        append(Package(
            P, V, A, T, U, L, o or "", mt or "", c or "", int(t) if t else 0, int(S), int(I),
            int(k) if k else 0, C, "", D.split() if D else [], p.split() if p else [],
            i.split() if i else [], [], [], repository, pin,
        ))
    if pos != len(text):
        packages.extend(_parse_slow(text, pos, len(text), source, repository, pin))
    return packages


def _parse_slow(text: str, start: int, end: int, source: str, repository: str, pin: str) -> list[Package]:
    packages: list[Package] = []
    lineno = text.count("\n", 0, start) + 1
    fields: dict[str, str] = {}
    for line in text[start:end].split("\n") + [""]:
        if line:
            if len(line) < 2 or line[1] != ":":
                raise FormatError(f"{source}: APKINDEX line {lineno}: malformed line {line!r} (expected 'X:value')")
            key = line[0]
            # apk-tools appends repeated dependency lists rather than replacing them
            fields[key] = f"{fields[key]} {line[2:]}" if key in fields and key in _LIST else line[2:]
        elif fields:
            if fields.get("P"):
                packages.append(_from_fields(fields, source, repository, pin))
            fields = {}
        lineno += 1
    return packages


def _from_fields(f: dict[str, str], source: str, repository: str, pin: str) -> Package:
    try:
        ints = {attr: int(f[letter]) for letter, attr in _INT.items() if f.get(letter)}
    except ValueError as e:
        raise FormatError(f"{source}: APKINDEX record for {f['P']!r}: bad number ({e})") from None
    return Package(
        **{attr: f[letter] for letter, attr in _TEXT.items() if letter in f},
        **ints,
        **{attr: f[letter].split() for letter, attr in _LIST.items() if letter in f},
        repository=repository, pin=pin,
    )


def read(
    data: bytes,
    source: str,
    keyring: keys.Keyring | None = None,
    *,
    verify: bool = True,
    repository: str = "",
    pin: str = "",
    cap: int = INDEX_CAP,
) -> Index:
    """Parse and (unless `verify` is False) verify an APKINDEX.tar.gz held in memory;
    `cap` bounds its decompressed size."""
    members = inflate_members(data, source, cap)
    if not members:
        raise FormatError(f"{source}: empty index file")
    sigs: list[signature.Signature] = []
    body = data
    if signature.is_signature_tar(members[0][1]):
        sigs = signature.parse_tar(members[0][1], source)
        body = data[members[0][0]:]
        members = members[1:]
    verified: list[str] = []
    if verify:
        digests = {alg: hashlib.new(name, body).digest() for alg, (name, _) in keys.DIGESTS.items()
                   if any(s.alg == alg for s in sigs)}
        if not sigs:
            raise VerificationError(f"{source}: index is not signed (use --ignore-signatures to accept it)")
        verified = signature.verify(sigs, keyring or keys.Keyring(), digests, source)
    text, description = _read_tar(b"".join(m for _, m in members), source)
    del members
    records = text.count("\nP:") + text.startswith("P:")
    if records > MAX_INDEX_PACKAGES:
        raise LimitError(f"{source}: {records} package records, more than the cap of {MAX_INDEX_PACKAGES}")
    return Index(parse_text(text, source, repository, pin), description, sigs, verified)


def read_file(path: str | Path, keyring: keys.Keyring | None = None, **kw) -> Index:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FormatError(f"{path}: cannot read index: {e.strerror}") from None
    return read(data, str(path), keyring, **kw)


def _read_tar(tar: bytes, source: str) -> tuple[str, str]:
    entries = _plain_tar_entries(tar)
    if entries is None:
        entries = _tarfile_entries(tar, source)
    text: str | None = None
    description = ""
    for name, content in entries:
        if name.startswith(".SIGN."):
            continue
        if name == "APKINDEX":
            text = content.decode("utf-8", "replace")
        elif name == "DESCRIPTION":
            description = content.decode("utf-8", "replace")
        else:
            raise FormatError(f"{source}: unexpected entry {name!r} in index (only APKINDEX and DESCRIPTION)")
    if text is None:
        raise FormatError(f"{source}: no APKINDEX entry in index")
    return text, description


def _plain_tar_entries(tar: bytes) -> list[tuple[str, bytes]] | None:
    """Fast path for the plain ustar files every index writer emits; None means "use tarfile"."""
    out: list[tuple[str, bytes]] = []
    pos = 0
    while pos + 512 <= len(tar):
        hdr = tar[pos:pos + 512]
        if hdr == b"\0" * 512:
            return out
        if hdr[156:157] not in (b"0", b"\0") or hdr[345:346] != b"\0":  # other types, or a ustar prefix
            return None
        try:
            size = int(hdr[124:136].strip(b"\0 ") or b"0", 8)
            stored = int(hdr[148:156].strip(b"\0 "), 8)
        except ValueError:
            return None
        if stored != sum(hdr[:148]) + 256 + sum(hdr[156:]):
            return None
        name = hdr[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        out.append((name, tar[pos + 512:pos + 512 + size]))
        pos += 512 + size + (-size % 512)
    return out if pos == len(tar) else None


def _tarfile_entries(tar: bytes, source: str) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as tf:
            for info in tf:
                if not info.isfile():
                    raise FormatError(f"{source}: unexpected entry {info.name!r} in index (only APKINDEX and DESCRIPTION)")
                f = tf.extractfile(info)
                out.append((info.name, f.read() if f else b""))
    except tarfile.TarError as e:
        raise FormatError(f"{source}: index is not a tar ({e})") from None
    return out


def render_text(packages: list[Package]) -> str:
    """APKINDEX text in apk-tools' letter order: C P V A S I T U L o m t c k D p i."""
    out: list[str] = []
    for p in packages:
        lines = [f"C:{p.checksum}", f"P:{p.name}", f"V:{p.version}", f"A:{p.arch}", f"S:{p.size}",
                 f"I:{p.installed_size}", f"T:{p.description}", f"U:{p.url}", f"L:{p.license}"]
        if p.origin:
            lines.append(f"o:{p.origin}")
        if p.maintainer:
            lines.append(f"m:{p.maintainer}")
        if p.build_time:
            lines.append(f"t:{p.build_time}")
        if p.commit:
            lines.append(f"c:{p.commit}")
        if p.provider_priority:
            lines.append(f"k:{p.provider_priority}")
        if p.depends:
            lines.append("D:" + " ".join(p.depends))
        if p.provides:
            lines.append("p:" + " ".join(p.provides))
        if p.install_if:
            lines.append("i:" + " ".join(p.install_if))
        out.append("\n".join(lines) + "\n\n")
    return "".join(out)


def build(packages: list[Package], description: str = "", signing_key: keys.SigningKey | None = None) -> bytes:
    """An APKINDEX.tar.gz: the index member (closed tar, mtime 0), signed when a key is given."""
    tar = b""
    for name, content in (("DESCRIPTION", description.encode()), ("APKINDEX", render_text(packages).encode())):
        if name == "DESCRIPTION" and not description:
            continue
        tar += encode_header(Header(name, mode=0o644, size=len(content))) + content + padding(len(content))
    body = gzip_member(tar + END_OF_ARCHIVE)
    return sign_body(body, signing_key) if signing_key else body


def sign_body(body: bytes, key: keys.SigningKey) -> bytes:
    sig = signature.sign(key, {"RSA256": hashlib.sha256(body).digest()})
    return signature.build_member([sig]) + body


def resign(data: bytes, source: str, key: keys.SigningKey) -> bytes:
    """Replace an index's signatures with one by `key`, keeping the index member's bytes."""
    members = inflate_members(data, source, INDEX_CAP)
    start = members[0][0] if members and signature.is_signature_tar(members[0][1]) else 0
    if start == len(data):
        raise FormatError(f"{source}: index has no index member")
    return sign_body(data[start:], key)


def merge(old: list[Package], new: list[Package]) -> list[Package]:
    """melange's merge: a new package replaces the same name and version, else it is appended."""
    out = list(old)
    where = {(p.name, p.version): i for i, p in enumerate(out)}
    for p in new:
        i = where.get((p.name, p.version))
        if i is None:
            where[(p.name, p.version)] = len(out)
            out.append(p)
        else:
            out[i] = p
    return out
