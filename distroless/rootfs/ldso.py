"""glibc's `/etc/ld.so.cache` in the new format (`glibc-ld.so.cache1.1`), built from the tree.

apko writes this file when the image has `/etc/ld.so.conf` (apko.md §2.8 item 12). The layout and
the selection rules follow glibc's own ldconfig, so that ld.so's binary search finds every entry
and `ldconfig -p` lists what ldconfig itself would have put there:

* header (48 bytes), then one 24-byte entry per library, then a string table; every string offset
  counts from the start of the file;
* entries in descending `_dl_cache_libcmp` order (digit runs compare numerically), equal names by
  descending flags, then in scan order;
* the string table holds each distinct string once, ordered by its reversed bytes (descending), and
  a string that is the tail of its predecessor shares that predecessor's bytes;
* an optional extension directory (aligned to 4) after the strings; ldconfig stores its
  "generator" string there. apko writes none, and neither does `write_ld_so_cache`.

Directories scanned: `/lib`, then those in ld.so.conf (apko's choice), each resolved inside the
tree; a directory reached twice (usr-merge `/lib → usr/lib`) is scanned once, under its first name,
as ldconfig does with its inode check. Deliberate differences from apko's Go code, which has had
several orderings over time: ld.so.conf is read to the end after an `include` (apko stops there),
relative include patterns are taken from the including file's directory (glibc), and files pick
their cache key by ldconfig's rules (a library without its soname link still gets the soname entry).
"""

from __future__ import annotations

import fnmatch
import functools
import io
import posixpath
import re
import struct
from dataclasses import dataclass
from typing import BinaryIO


from distroless.errors import FormatError
from distroless.rootfs.tree import Children, Node, TarRef, Tree

MAGIC = b"glibc-ld.so.cache1.1"
EXTENSION_MAGIC = 0xEAA42174
TAG_GENERATOR = 0  # cache_extension_tag_generator: free-form text naming the writer
HEADER_SIZE, ENTRY_SIZE = 48, 24
ENDIAN_LITTLE, ENDIAN_BIG = 2, 3  # header `flags` values; 0 means "unset" and is read as little

# Entry flags (glibc's dl-cache.h): low byte = library type, next byte = ABI/arch requirement.
FLAG_ELF_LIBC6 = 0x0003
FLAG_SPARC_LIB64 = 0x0100
FLAG_IA64_LIB64 = 0x0200
FLAG_X8664_LIB64 = 0x0300
FLAG_S390_LIB64 = 0x0400
FLAG_POWERPC_LIB64 = 0x0500
FLAG_MIPS64_LIBN32 = 0x0600
FLAG_MIPS64_LIBN64 = 0x0700
FLAG_X8664_LIBX32 = 0x0800
FLAG_ARM_LIBHF = 0x0900
FLAG_AARCH64_LIB64 = 0x0A00
FLAG_ARM_LIBSF = 0x0B00
FLAG_MIPS_LIB32_NAN2008 = 0x0C00
FLAG_MIPS64_LIBN32_NAN2008 = 0x0D00
FLAG_MIPS64_LIBN64_NAN2008 = 0x0E00
FLAG_RISCV_FLOAT_ABI_SOFT = 0x0F00
FLAG_RISCV_FLOAT_ABI_DOUBLE = 0x1000
FLAG_LARCH_FLOAT_ABI_SOFT = 0x1100
FLAG_LARCH_FLOAT_ABI_DOUBLE = 0x1200

SYSTEM_DIRS = ("/lib",)  # apko scans /lib ahead of the configured directories
CONF = "/etc/ld.so.conf"
CACHE = "etc/ld.so.cache"
MAX_SYMLINKS = 40


class LdCacheError(FormatError):
    pass


@dataclass(frozen=True, slots=True)
class CacheEntry:
    flags: int
    key: str  # the soname ld.so looks up
    value: str  # the absolute path it loads
    osversion: int = 0
    hwcap: int = 0


@dataclass(frozen=True, slots=True)
class Extension:
    tag: int
    flags: int
    data: bytes


@dataclass(frozen=True, slots=True)
class LdCache:
    entries: tuple[CacheEntry, ...]
    extensions: tuple[Extension, ...] = ()
    endian: int = ENDIAN_LITTLE


# ---------------------------------------------------------------------------------------------
# The file format


def _enc(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _dec(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _order(endian: int) -> str:
    return ">" if endian == ENDIAN_BIG else "<"


def _align4(n: int) -> int:
    return (n + 3) & ~3


def parse(data: bytes) -> LdCache:
    """Read a new-format cache (the old `ld.so-1.7.0` format and the combined file are refused)."""
    if len(data) < HEADER_SIZE or not data.startswith(MAGIC):
        raise LdCacheError("ld.so.cache: not a glibc-ld.so.cache1.1 file")
    endian = data[28]
    if endian not in (0, ENDIAN_LITTLE, ENDIAN_BIG):
        raise LdCacheError(f"ld.so.cache: invalid endianness flag {endian}")
    o = _order(endian)
    nlibs, len_strings = struct.unpack_from(o + "II", data, 20)
    (ext_offset,) = struct.unpack_from(o + "I", data, 32)
    str_start = HEADER_SIZE + nlibs * ENTRY_SIZE
    str_end = str_start + len_strings
    if str_end > len(data):
        raise LdCacheError(f"ld.so.cache: {nlibs} entries and {len_strings} string bytes exceed the file")

    def string(off: int, what: str) -> str:
        if not str_start <= off < str_end:
            raise LdCacheError(f"ld.so.cache: {what} offset {off} outside the string table")
        end = data.find(b"\0", off, str_end)
        if end < 0:
            raise LdCacheError(f"ld.so.cache: unterminated string at {off}")
        return _dec(data[off:end])

    entries = []
    for i in range(nlibs):
        flags, key, value, osv, hwcap = struct.unpack_from(o + "iIIIQ", data, HEADER_SIZE + i * ENTRY_SIZE)
        entries.append(CacheEntry(flags, string(key, f"entry {i} key"), string(value, f"entry {i} value"), osv, hwcap))
    return LdCache(tuple(entries), _parse_extensions(data, ext_offset, str_end, o), endian)


def _parse_extensions(data: bytes, offset: int, str_end: int, o: str) -> tuple[Extension, ...]:
    if offset == 0:
        return ()
    if offset < str_end or offset + 8 > len(data):
        raise LdCacheError(f"ld.so.cache: extension directory offset {offset} is out of range")
    magic, count = struct.unpack_from(o + "II", data, offset)
    if magic != EXTENSION_MAGIC:
        return ()  # ld.so ignores a directory without the magic, so do we
    out = []
    for i in range(count):
        at = offset + 8 + 16 * i
        if at + 16 > len(data):
            raise LdCacheError(f"ld.so.cache: extension section {i} header is truncated")
        tag, flags, off, size = struct.unpack_from(o + "IIII", data, at)
        if off + size > len(data):
            raise LdCacheError(f"ld.so.cache: extension section {i} data is out of range")
        out.append(Extension(tag, flags, data[off : off + size]))
    return tuple(out)


def _tail_key(s: bytes) -> bytes:
    return s[::-1]


def string_table(strings: set[bytes]) -> tuple[bytes, dict[bytes, int]]:
    """glibc's string table: reversed-bytes descending order puts every string right after the
    longer strings it is a tail of, so a tail shares its predecessor's bytes."""
    ordered = sorted(strings, key=_tail_key, reverse=True)
    offsets: dict[bytes, int] = {}
    size = 0
    prev = b""
    for s in ordered:
        if prev.endswith(s) and prev:
            offsets[s] = offsets[prev] + len(prev) - len(s)
        else:
            offsets[s] = size
            size += len(s) + 1
        prev = s
    table = bytearray(size)
    for s, off in offsets.items():
        table[off : off + len(s)] = s
    return bytes(table), offsets


def render(cache: LdCache) -> bytes:
    o = _order(cache.endian)
    n = len(cache.entries)
    table, offsets = string_table({_enc(s) for e in cache.entries for s in (e.key, e.value)})
    base = HEADER_SIZE + n * ENTRY_SIZE
    ext_offset = _align4(base + len(table)) if cache.extensions else 0
    out = bytearray(MAGIC)
    out += struct.pack(o + "IIB3xI12x", n, len(table), cache.endian, ext_offset)
    for e in cache.entries:
        out += struct.pack(o + "iIIIQ", e.flags, base + offsets[_enc(e.key)], base + offsets[_enc(e.value)],
                           e.osversion, e.hwcap)
    out += table
    if cache.extensions:
        out += bytes(ext_offset - len(out))
        out += struct.pack(o + "II", EXTENSION_MAGIC, len(cache.extensions))
        # Section data follows the directory, in order, each section starting 4-aligned.
        cursor = ext_offset + 8 + 16 * len(cache.extensions)
        blobs = bytearray()
        for x in cache.extensions:
            start = _align4(cursor)
            blobs += bytes(start - cursor) + x.data
            out += struct.pack(o + "IIII", x.tag, x.flags, start, len(x.data))
            cursor = start + len(x.data)
        out += blobs
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Ordering


def _isdigit(c: int) -> bool:
    return 0x30 <= c <= 0x39


def libcmp(a: str, b: str) -> int:
    """glibc's `_dl_cache_libcmp`: digit runs compare as numbers, a digit sorts after any other
    byte, other bytes compare by value (unsigned, as on aarch64; names are ASCII in practice)."""
    x, y = _enc(a) + b"\0", _enc(b) + b"\0"
    i = j = 0
    while x[i] != 0:
        if _isdigit(x[i]):
            if not _isdigit(y[j]):
                return 1
            vi = vj = 0
            while _isdigit(x[i]):
                vi, i = vi * 10 + x[i] - 0x30, i + 1
            while _isdigit(y[j]):
                vj, j = vj * 10 + y[j] - 0x30, j + 1
            if vi != vj:
                return -1 if vi < vj else 1
        elif _isdigit(y[j]):
            return -1
        elif x[i] != y[j]:
            return -1 if x[i] < y[j] else 1
        else:
            i, j = i + 1, j + 1
    return -1 if y[j] != 0 else 0


def _entry_cmp(a: CacheEntry, b: CacheEntry) -> int:
    # ldconfig's cache order: names descending, then flags descending; ties keep scan order.
    r = libcmp(b.key, a.key)
    if r:
        return r
    return (a.flags < b.flags) - (a.flags > b.flags)


def sort_entries(entries: list[CacheEntry]) -> list[CacheEntry]:
    return sorted(entries, key=functools.cmp_to_key(_entry_cmp))  # stable


# ---------------------------------------------------------------------------------------------
# ELF


def elf_flags(elfclass: int, machine: str | int, e_flags: int) -> int | None:
    """The cache flags ldconfig gives a library of this class and machine (None: not loadable)."""
    if machine == "EM_X86_64":
        return FLAG_ELF_LIBC6 | (FLAG_X8664_LIB64 if elfclass == 64 else FLAG_X8664_LIBX32)
    if machine == "EM_AARCH64":
        return FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64
    if machine == "EM_ARM":
        if e_flags >> 24 == 5:  # EABI version 5: the float ABI is recorded in e_flags
            return FLAG_ELF_LIBC6 | (FLAG_ARM_LIBHF if e_flags & 0x400 else FLAG_ARM_LIBSF)
        return FLAG_ELF_LIBC6
    if machine == "EM_PPC64":
        return FLAG_ELF_LIBC6 | FLAG_POWERPC_LIB64
    if machine == "EM_S390" and elfclass == 64:
        return FLAG_ELF_LIBC6 | FLAG_S390_LIB64
    if machine == "EM_SPARCV9":
        return FLAG_ELF_LIBC6 | FLAG_SPARC_LIB64
    if machine == "EM_IA_64":
        return FLAG_ELF_LIBC6 | FLAG_IA64_LIB64
    if machine == "EM_RISCV":
        abi = e_flags & 0x6
        if abi == 0x0:
            return FLAG_ELF_LIBC6 | FLAG_RISCV_FLOAT_ABI_SOFT
        if abi == 0x4:
            return FLAG_ELF_LIBC6 | FLAG_RISCV_FLOAT_ABI_DOUBLE
        return None  # single and quad float ABIs have no glibc port
    if machine in ("EM_LOONGARCH", 258):
        abi = e_flags & 0x7
        if abi == 0x1:
            return FLAG_ELF_LIBC6 | FLAG_LARCH_FLOAT_ABI_SOFT
        if abi == 0x3:
            return FLAG_ELF_LIBC6 | FLAG_LARCH_FLOAT_ABI_DOUBLE
        return None
    if machine in ("EM_MIPS", "EM_MIPS_RS3_LE"):
        nan2008 = bool(e_flags & 0x400)
        if elfclass == 64:
            return FLAG_ELF_LIBC6 | (FLAG_MIPS64_LIBN64_NAN2008 if nan2008 else FLAG_MIPS64_LIBN64)
        if e_flags & 0x20:  # EF_MIPS_ABI2: n32
            return FLAG_ELF_LIBC6 | (FLAG_MIPS64_LIBN32_NAN2008 if nan2008 else FLAG_MIPS64_LIBN32)
        return FLAG_ELF_LIBC6 | (FLAG_MIPS_LIB32_NAN2008 if nan2008 else 0)
    return FLAG_ELF_LIBC6  # i386 and the rest: plain libc6, as ldconfig prints "(libc6)"


@dataclass(frozen=True, slots=True)
class ElfLib:
    flags: int
    soname: str | None  # DT_SONAME, if the object has one


def read_elf(stream: BinaryIO) -> ElfLib | None:
    """Flags and DT_SONAME of a shared object; None for anything ldconfig would skip (not ELF,
    not ET_DYN, malformed, unsupported ABI)."""
    stream.seek(0)
    if stream.read(4) != b"\x7fELF":
        return None
    # here: pyelftools is only needed when an image has shared objects to index (start-up)
    from elftools.common.exceptions import ELFError
    from elftools.construct import ConstructError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(stream)
        if elf.header["e_type"] != "ET_DYN":
            return None
        flags = elf_flags(elf.elfclass, elf.header["e_machine"], elf.header["e_flags"])
        if flags is None:
            return None
        soname = None
        for seg in elf.iter_segments():
            if seg.header["p_type"] == "PT_DYNAMIC":
                for tag in seg.iter_tags("DT_SONAME"):
                    soname = tag.soname
                    break
                break
        return ElfLib(flags, soname)
    except (ELFError, ConstructError, ValueError, KeyError, IndexError, AttributeError, OverflowError,
            AssertionError, struct.error, EOFError, RecursionError):
        return None  # pyelftools' ways of failing on a damaged object; ldconfig skips those too


class _TarSlice(io.RawIOBase):
    """A seekable window on a file's bytes inside an uncompressed tar, so reading a library's
    headers does not load the whole library."""

    def __init__(self, ref: TarRef) -> None:
        self._f = open(ref.path, "rb")
        self._start, self._size, self._pos = ref.offset, ref.size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        n = max(0, min(len(b), self._size - self._pos))
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()


def _open(node: Node) -> BinaryIO:
    if isinstance(node.content, TarRef):
        return io.BufferedReader(_TarSlice(node.content))  # type: ignore[return-value]
    return io.BytesIO(node.data())


# ---------------------------------------------------------------------------------------------
# Paths inside the tree


def _file(node: Node) -> Node:
    return node.target if node.type == "lnk" and node.target is not None else node


def resolve(tree: Tree, path: str) -> tuple[str, Node] | None:
    """The canonical path and node `path` names, following every symlink inside the tree (an
    absolute target restarts at the tree's root); None if it does not exist."""
    todo = [p for p in path.split("/") if p not in ("", ".")]
    done: list[tuple[str, Node]] = []
    links = 0
    while todo:
        name = todo.pop(0)
        if name == "..":
            if done:
                done.pop()
            continue
        parent = done[-1][1] if done else tree.root
        child = parent.children.peek(name) if isinstance(parent.children, Children) else None
        if child is None:
            return None
        if child.type == "sym":
            links += 1
            if links > MAX_SYMLINKS:
                return None
            if child.linkname.startswith("/"):
                done = []
            todo = [p for p in child.linkname.split("/") if p not in ("", ".")] + todo
            continue
        done.append((name, child))
    return "/" + "/".join(n for n, _ in done), (done[-1][1] if done else tree.root)


def _text(tree: Tree, path: str) -> str | None:
    r = resolve(tree, path)
    if r is None or _file(r[1]).type != "reg":
        return None
    return _dec(_file(r[1]).data())


def _glob(tree: Tree, pattern: str) -> list[str]:
    """glob(3) inside the tree: `*?[` per component, a leading dot only matched explicitly,
    results sorted bytewise (glibc's glob sorts in the C locale)."""
    found = ["/"]
    for part in (p for p in pattern.split("/") if p):
        if not any(c in part for c in "*?["):
            found = [posixpath.join(base, part) for base in found]
            continue
        nxt = []
        for base in found:
            r = resolve(tree, base)
            if r is None or r[1].type != "dir" or r[1].children is None:
                continue
            nxt += [posixpath.join(base, n) for n in r[1].children
                    if fnmatch.fnmatchcase(n, part) and (not n.startswith(".") or part.startswith("."))]
        found = nxt
    return sorted((p for p in found if resolve(tree, p) is not None), key=_enc)


def parse_conf(tree: Tree, path: str = CONF, _depth: int = 0) -> list[str]:
    """Directories listed in an ld.so.conf, in order: `#` starts a comment, `include` takes
    whitespace-separated glob patterns (relative ones from the including file's directory),
    `hwcap` lines are ignored, a `=type` suffix and trailing slashes are dropped."""
    text = _text(tree, path)
    if text is None or _depth > 16:
        return []
    dirs: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        word, rest = (re.split(r"[ \t]+", line, maxsplit=1) + [""])[:2]
        if word == "include" and rest:
            for pattern in rest.split():
                if not pattern.startswith("/"):
                    pattern = posixpath.join(posixpath.dirname(path), pattern)
                for match in _glob(tree, pattern):
                    dirs.extend(parse_conf(tree, match, _depth + 1))
        elif word.lower() == "hwcap" and rest:
            continue
        else:
            d = line.split("=", 1)[0].rstrip()
            while len(d) > 1 and d.endswith("/"):
                d = d[:-1]
            if d:
                dirs.append(d)
    return dirs


# ---------------------------------------------------------------------------------------------
# Scanning


def _is_dso_name(name: str) -> bool:
    # ldconfig only looks at lib*.so* and ld-*.so*; prelink's leftovers are skipped.
    if not (name.startswith("lib") or name.startswith("ld-")) or ".so" not in name:
        return False
    return not (name.endswith(".#prelink#") or ".#prelink#." in name)


@dataclass(slots=True)
class _Lib:
    name: str
    soname: str
    flags: int
    is_link: bool


def scan_dir(tree: Tree, canonical: str, node: Node) -> list[_Lib]:
    """The libraries ldconfig would take from one directory: one per soname, a real file
    preferred to a symlink, otherwise the newer file name."""
    chosen: dict[str, _Lib] = {}
    order: list[str] = []
    assert isinstance(node.children, Children)
    for name, child in node.children.sorted_items():
        if not _is_dso_name(name):
            continue
        is_link = child.type == "sym"
        if is_link:
            r = resolve(tree, posixpath.join(canonical, name))
            if r is None:
                continue  # dangling
            child = r[1]
        child = _file(child)
        if child.type != "reg":
            continue
        with _open(child) as f:
            info = read_elf(f)
        if info is None:
            continue
        soname = info.soname or name
        # A symlink is kept as a link only when it is named after its soname, or is the
        # development link (`libfoo.so` for `libfoo.so.1`); then it is cached under its own name.
        if is_link and name != soname and not (name.endswith(".so") and soname.startswith(name)):
            is_link = False
        if is_link:
            soname = name
        lib = _Lib(name, soname, info.flags, is_link)
        old = chosen.get(soname)
        if old is None:
            chosen[soname] = lib
            order.append(soname)
        elif (not is_link and old.is_link) or (is_link == old.is_link and libcmp(old.name, name) < 0):
            chosen[soname] = lib
    return [chosen[s] for s in order]


def cache_entries(tree: Tree, dirs: list[str]) -> list[CacheEntry]:
    """Entries for `dirs` (in precedence order), sorted as ldconfig sorts them."""
    seen: set[int] = set()
    entries: list[CacheEntry] = []
    for d in dirs:
        r = resolve(tree, d)
        if r is None or r[1].type != "dir" or id(r[1]) in seen:
            continue
        seen.add(id(r[1]))
        prefix = d.rstrip("/") or ""
        for lib in scan_dir(tree, r[0], r[1]):
            entries.append(CacheEntry(lib.flags, lib.soname, f"{prefix}/{lib.soname}"))
    return sort_entries(entries)


def build_cache(tree: Tree, dirs: list[str] | None = None, generator: str | None = None) -> LdCache:
    """The cache for the tree: `/lib` plus ld.so.conf's directories unless `dirs` is given.
    `generator` adds ldconfig's generator extension (apko writes none)."""
    if dirs is None:
        dirs = list(SYSTEM_DIRS) + parse_conf(tree)
    ext = (Extension(TAG_GENERATOR, 0, generator.encode()),) if generator is not None else ()
    return LdCache(tuple(cache_entries(tree, dirs)), ext)


def write_ld_so_cache(tree: Tree) -> None:
    """apko's last post-install step: `/etc/ld.so.cache` (0644, mtime 0) when ld.so.conf exists."""
    if resolve(tree, CONF) is None:
        return
    tree.write_file(CACHE, render(build_cache(tree)), mode=0o644)
