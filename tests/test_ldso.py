"""glibc ld.so.cache: the real fixture round-trips, and generation agrees with glibc's own ldconfig."""

from __future__ import annotations

import io
import os
import random
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from distroless.rootfs import ldso
from distroless.rootfs.tree import Node, TarRef, Tree
from shared import APK

FIXTURE = APK / "ld.so.cache"
HOSTLIB = Path("/usr/lib/x86_64-linux-gnu")
AARCH64 = ldso.FLAG_ELF_LIBC6 | ldso.FLAG_AARCH64_LIB64
X86_64 = ldso.FLAG_ELF_LIBC6 | ldso.FLAG_X8664_LIB64


def _tool(name: str, *candidates: str) -> str:
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is required for this real-peer check and was not found", pytrace=False)
    return found


def ldconfig() -> str:
    return _tool("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig")


def listing(cache_file: Path) -> list[tuple[str, str, str]]:
    """`ldconfig -p -C FILE`: (soname, type/arch text, path) in file order."""
    out = subprocess.run([ldconfig(), "-p", "-C", str(cache_file)], check=True, capture_output=True, text=True).stdout
    return re.findall(r"^\t(\S+) \(([^)]*)\) => (\S+)$", out, re.M)


def host_lib(name: str) -> bytes:
    p = HOSTLIB / name
    if not p.exists():
        pytest.fail(f"host library {p} is needed as real ELF input", pytrace=False)
    return p.read_bytes()


def real_name(soname: str) -> str:
    """The file the host's soname link points at (e.g. libffi.so.8 -> libffi.so.8.1.2): the
    versions differ between Debian releases, so they are read from the system."""
    p = HOSTLIB / soname
    if not p.is_symlink():
        pytest.fail(f"{p} should be the soname link to a fully versioned library", pytrace=False)
    name = p.resolve().name
    assert name.startswith(soname + "."), (soname, name)
    return name


FFI, LZMA, EXPAT = real_name("libffi.so.8"), real_name("liblzma.so.5"), real_name("libexpat.so.1")


def add(tree: Tree, path: str, data: bytes) -> None:
    tree.mkdir_all(os.path.dirname(path), 0o755)
    tree.write_file(path, data, mode=0o755)


def link(tree: Tree, path: str, target: str) -> None:
    tree.mkdir_all(os.path.dirname(path), 0o755)
    tree.put(path, Node("sym", 0o777, linkname=target))


def materialize(tree: Tree, root: Path) -> None:
    for path, node in tree.walk():
        full = root / path
        if node.type == "dir":
            full.mkdir(exist_ok=True)
        elif node.type == "sym":
            os.symlink(node.linkname, full)
        else:
            full.write_bytes(node.data())


def compile_libs(tmp: Path, names: dict[str, str | None]) -> dict[str, bytes]:
    """Tiny shared objects: file name → bytes, with the given DT_SONAME (None: none)."""
    gcc = _tool("gcc", "/usr/bin/gcc")
    src = tmp / "x.c"
    src.write_text("int f(void) { return 1; }\n")
    out = {}
    for name, soname in names.items():
        dst = tmp / name
        cmd = [gcc, "-shared", "-fPIC", "-o", str(dst), str(src)]
        if soname is not None:
            cmd.append(f"-Wl,-soname,{soname}")
        subprocess.run(cmd, check=True)
        out[name] = dst.read_bytes()
    return out


# --------------------------------------------------------------------------------------------
# The format, against the real fixture (written by glibc 2.36's ldconfig on Wolfi aarch64)


def test_fixture_parses() -> None:
    cache = ldso.parse(FIXTURE.read_bytes())
    assert len(cache.entries) == 65
    assert {e.flags for e in cache.entries} == {AARCH64}
    assert all(e.hwcap == 0 and e.osversion == 0 for e in cache.entries)
    assert cache.entries[0] == ldso.CacheEntry(AARCH64, "libz.so.1", "/lib/libz.so.1")
    assert cache.entries[-1].key == "ld-linux-aarch64.so.1"
    assert cache.extensions == (ldso.Extension(ldso.TAG_GENERATOR, 0, b"ldconfig (GNU libc) stable release version 2.36"),)
    assert cache.endian == ldso.ENDIAN_LITTLE


def test_fixture_round_trips_byte_for_byte() -> None:
    data = FIXTURE.read_bytes()
    assert ldso.render(ldso.parse(data)) == data


def test_fixture_matches_ldconfig_listing() -> None:
    """glibc's reader sees the same entries, in the same order, as ours."""
    ours = [(e.key, e.value) for e in ldso.parse(FIXTURE.read_bytes()).entries]
    theirs = [(name, path) for name, _, path in listing(FIXTURE)]
    assert ours == theirs
    assert {kind for _, kind, _ in listing(FIXTURE)} == {"libc6,AArch64"}


def test_fixture_order_is_ldconfig_order() -> None:
    entries = list(ldso.parse(FIXTURE.read_bytes()).entries)
    for seed in range(5):
        shuffled = entries[:]
        random.Random(seed).shuffle(shuffled)
        assert ldso.sort_entries(shuffled) == entries


def test_fixture_string_table_shares_tails() -> None:
    """A soname that is its path's basename points into the path string."""
    data = FIXTURE.read_bytes()
    base = ldso.HEADER_SIZE + 65 * ldso.ENTRY_SIZE
    cache = ldso.parse(data)
    table, offsets = ldso.string_table({s.encode() for e in cache.entries for s in (e.key, e.value)})
    assert len(table) == int.from_bytes(data[24:28], "little") == 1421
    for i, e in enumerate(cache.entries):
        key, value = (int.from_bytes(data[ldso.HEADER_SIZE + i * 24 + o: ldso.HEADER_SIZE + i * 24 + o + 4], "little")
                      for o in (4, 8))
        assert value == base + offsets[e.value.encode()]
        if e.value.rsplit("/", 1)[1] == e.key:
            assert key == value + len(e.value) - len(e.key)


@pytest.mark.parametrize("a,b,sign", [
    ("libA9.so.1", "libA10.so.1", -1),  # digit runs compare as numbers
    ("libfoo.so.1.2", "libfoo.so.1.10", -1),
    ("libyaml-0.so.2", "libyaml-cpp.so.0.8", 1),  # a digit sorts after a letter
    ("libc.so", "libc.so.6", -1),  # a prefix sorts first
    ("libc.so.6", "libc.so.6", 0),
    ("libc.so.06", "libc.so.6", 0),
    ("libZ.so.1", "liba.so.1", -1),
])
def test_libcmp(a: str, b: str, sign: int) -> None:
    r = ldso.libcmp(a, b)
    assert (r > 0) - (r < 0) == sign
    r = ldso.libcmp(b, a)
    assert (r > 0) - (r < 0) == -sign


def test_render_without_extensions_has_no_directory() -> None:
    cache = ldso.LdCache((ldso.CacheEntry(X86_64, "libz.so.1", "/lib/libz.so.1"),))
    data = ldso.render(cache)
    assert data[32:36] == b"\0\0\0\0"  # extension_offset
    assert len(data) == 48 + 24 + len(b"/lib/libz.so.1\0")
    assert ldso.parse(data) == cache


def test_render_two_extensions_round_trip() -> None:
    cache = ldso.LdCache((ldso.CacheEntry(X86_64, "libz.so.1", "/lib/libz.so.1"),),
                         (ldso.Extension(0, 0, b"abc"), ldso.Extension(7, 1, b"\1\2\3\4\5")))
    assert ldso.parse(ldso.render(cache)) == cache


def test_big_endian_round_trip() -> None:
    cache = ldso.LdCache((ldso.CacheEntry(0x0403, "libz.so.1", "/lib/libz.so.1"),), (), ldso.ENDIAN_BIG)
    data = ldso.render(cache)
    assert data[20:24] == b"\0\0\0\1"
    assert ldso.parse(data) == cache


@pytest.mark.parametrize("data,message", [
    (b"ld.so-1.7.0" + bytes(40), "not a glibc-ld.so.cache1.1"),
    (ldso.MAGIC + b"\x05\0\0\0" + bytes(24), "exceed the file"),
])
def test_parse_rejects(data: bytes, message: str) -> None:
    with pytest.raises(ldso.LdCacheError, match=message):
        ldso.parse(data)


def test_parse_rejects_offset_outside_strings() -> None:
    data = bytearray(ldso.render(ldso.LdCache((ldso.CacheEntry(X86_64, "libz.so.1", "/lib/libz.so.1"),))))
    data[48 + 4: 48 + 8] = (10_000).to_bytes(4, "little")
    with pytest.raises(ldso.LdCacheError, match="outside the string table"):
        ldso.parse(bytes(data))


# --------------------------------------------------------------------------------------------
# ld.so.conf


def test_parse_conf_includes_comments_and_quirks() -> None:
    t = Tree()
    t.write_file("etc/ld.so.conf", b"# top\n/usr/local/lib/   # trailing slash and comment\n"
                 b"include /etc/ld.so.conf.d/*.conf\n  /opt/after-include\n"
                 b"hwcap 1 foo\n/opt/typed=libc6\ninclude\tsub/*.conf extra.conf\n\n/usr/local/lib\n")
    t.write_file("etc/ld.so.conf.d/b.conf", b"/opt/b\n")
    t.write_file("etc/ld.so.conf.d/a.conf", b"/opt/a\ninclude /etc/nested.conf\n")
    t.write_file("etc/ld.so.conf.d/.hidden.conf", b"/opt/hidden\n")
    t.write_file("etc/ld.so.conf.d/c.txt", b"/opt/c\n")
    t.write_file("etc/nested.conf", b"/opt/nested\n")
    t.write_file("etc/sub/x.conf", b"/opt/relative\n")
    t.write_file("etc/extra.conf", b"/opt/extra\n")
    assert ldso.parse_conf(t) == ["/usr/local/lib", "/opt/a", "/opt/nested", "/opt/b", "/opt/after-include",
                                  "/opt/typed", "/opt/relative", "/opt/extra", "/usr/local/lib"]


def test_parse_conf_follows_symlinked_config_dir() -> None:
    t = Tree()
    t.write_file("etc/ld.so.conf", b"include /etc/ld.so.conf.d/*.conf\n")
    t.write_file("usr/share/ldconf/z.conf", b"/opt/z\n")
    link(t, "etc/ld.so.conf.d", "../usr/share/ldconf")
    assert ldso.parse_conf(t) == ["/opt/z"]


# --------------------------------------------------------------------------------------------
# Generation, against glibc's ldconfig over the same files on disk


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tree, Path]:
    """A usr-merged tree of real host libraries plus compiled ones with chosen sonames, and the
    same tree on disk."""
    tmp = tmp_path_factory.mktemp("ldso")
    tiny = compile_libs(tmp, {
        "libyaml-0.so.2": "libyaml-0.so.2", "libyaml-cpp.so.0.8": "libyaml-cpp.so.0.8",
        "libA9.so.1": "libA9.so.1", "libA10.so.1": "libA10.so.1", "libZ.so.1": "libZ.so.1",
        "liba.so.1": "liba.so.1", "libfoo.so.1.2": "libfoo.so.1.2", "libfoo.so.1.10": "libfoo.so.1.10",
        "libnosoname.so": None, "libnosoname2.so.3": None, "ld-foo.so": "ld-foo.so", "foo.so": "foo.so",
        "libdup.so.1": "libdup.so.1",
    })
    t = Tree()
    t.mkdir_all("usr/lib", 0o755)
    link(t, "lib", "usr/lib")
    for name in ("libc.so.6", "libm.so.6", "libssl.so.3"):
        add(t, f"usr/lib/{name}", host_lib(name))
    add(t, "usr/lib/libm.so", host_lib("libm.so"))  # a linker script: skipped
    add(t, f"usr/lib/{FFI}", host_lib(FFI))
    link(t, "usr/lib/libffi.so", FFI)  # dev link to the full version, no soname link
    add(t, f"usr/lib/{LZMA}", host_lib(LZMA))
    link(t, "usr/lib/liblzma.so.5", LZMA)
    link(t, "usr/lib/liblzma.so", "liblzma.so.5")
    link(t, "usr/lib/libssl.so", "libssl.so.3")
    link(t, "usr/lib/libalias.so.7", "libA10.so.1")  # named neither soname nor dev link
    link(t, "usr/lib/libdangling.so.1", "libmissing.so.1")
    for name, data in tiny.items():
        add(t, f"usr/lib/{name}", data)
    add(t, "usr/lib/libnotelf.so.1", b"not an ELF file at all\n")
    add(t, f"opt/x/{EXPAT}", host_lib(EXPAT))
    link(t, "opt/x/libexpat.so.1", EXPAT)
    link(t, "opt/x/libexpat.so", f"/opt/x/{EXPAT}")  # absolute: resolved inside the root
    add(t, "opt/x/libdup.so.1", tiny["libdup.so.1"])  # the same soname in two directories
    add(t, "opt/x/libssl.so.3", host_lib("libssl.so.3"))
    t.write_file("etc/ld.so.conf", b"# the image's config\ninclude /etc/ld.so.conf.d/*.conf\n")
    t.write_file("etc/ld.so.conf.d/x.conf", b"/opt/x/\n")
    root = tmp / "root"
    root.mkdir()
    materialize(t, root)
    return t, root


def run_ldconfig(root: Path) -> Path:
    subprocess.run([ldconfig(), "-X", "-r", str(root), "-C", "/real.cache"], check=True, capture_output=True)
    return root / "real.cache"


def test_generation_matches_ldconfig_byte_for_byte(built: tuple[Tree, Path]) -> None:
    """Same directories in ldconfig's order (configured, then the system ones) and its generator
    string: the files are identical, so entry choice, order, string table and layout all agree."""
    tree, root = built
    real = run_ldconfig(root).read_bytes()
    generator = ldso.parse(real).extensions[0].data.decode()
    ours = ldso.build_cache(tree, dirs=ldso.parse_conf(tree) + ["/lib", "/usr/lib"], generator=generator)
    assert [(e.key, e.value) for e in ours.entries] == [(e.key, e.value) for e in ldso.parse(real).entries]
    assert ldso.render(ours) == real


def test_write_ld_so_cache_read_by_ldconfig(built: tuple[Tree, Path], tmp_path: Path) -> None:
    """apko's directory order (/lib first) only reorders equal names; ldconfig lists the same set."""
    tree, root = built
    ldso.write_ld_so_cache(tree)
    node = tree.get("etc/ld.so.cache")
    assert node is not None and node.type == "reg" and node.mode == 0o644 and node.mtime == 0
    ours_file = tmp_path / "ours.cache"
    ours_file.write_bytes(node.data())
    ours = listing(ours_file)
    real = listing(run_ldconfig(root))
    assert sorted(ours) == sorted(real)
    assert {kind for _, kind, _ in ours} == {"libc6,x86-64"}
    names = [n for n, _, _ in ours]
    assert names.index("libyaml-0.so.2") < names.index("libyaml-cpp.so.0.8")  # descending glibc order
    assert names.index("libfoo.so.1.10") < names.index("libfoo.so.1.2")
    assert ("libnosoname.so", "/lib/libnosoname.so") in [(n, p) for n, _, p in ours]
    assert ("libffi.so", "/lib/libffi.so") in [(n, p) for n, _, p in ours]
    assert not any(n in ("foo.so", "libnotelf.so.1", "libdangling.so.1", "libalias.so.7", "libm.so") for n in names)
    dups = [p for n, _, p in ours if n == "libdup.so.1"]
    assert dups == ["/lib/libdup.so.1", "/opt/x/libdup.so.1"]  # /lib is scanned first, as apko does
    lib = [p for n, _, p in ours if n in ("libc.so.6", "libm.so.6")]
    assert lib == ["/lib/libm.so.6", "/lib/libc.so.6"]  # usr-merge: /usr/lib deduplicated into /lib


def test_no_conf_no_cache() -> None:
    t = Tree()
    add(t, "usr/lib/libc.so.6", host_lib("libc.so.6"))
    ldso.write_ld_so_cache(t)
    assert t.get("etc/ld.so.cache") is None


def test_empty_cache_when_nothing_found() -> None:
    t = Tree()
    t.write_file("etc/ld.so.conf", b"/nonexistent\n")
    ldso.write_ld_so_cache(t)
    node = t.get("etc/ld.so.cache")
    assert node is not None
    assert ldso.parse(node.data()) == ldso.LdCache(())


def test_aarch64_flags_from_elf_header() -> None:
    """An aarch64 object gets the fixture's flags (x86's ldconfig refuses foreign machines, so
    this is checked against the fixture, not the peer)."""
    data = bytearray(host_lib(FFI))
    data[18:20] = (183).to_bytes(2, "little")  # e_machine = EM_AARCH64
    info = ldso.read_elf(io.BytesIO(bytes(data)))
    assert info == ldso.ElfLib(AARCH64, "libffi.so.8")
    assert ldso.read_elf(io.BytesIO(host_lib(FFI))) == ldso.ElfLib(X86_64, "libffi.so.8")


@pytest.mark.parametrize("cls,machine,flags,expected", [
    (32, "EM_X86_64", 0, 0x0803),
    (32, "EM_386", 0, 0x0003),
    (32, "EM_ARM", 0x05000400, 0x0903),
    (32, "EM_ARM", 0x05000200, 0x0B03),
    (64, "EM_PPC64", 2, 0x0503),
    (64, "EM_S390", 0, 0x0403),
    (64, "EM_RISCV", 0x5, 0x1003),
    (64, "EM_RISCV", 0x1, 0x0F03),
    (64, "EM_RISCV", 0x2, None),
])
def test_elf_flags(cls: int, machine: str, flags: int, expected: int | None) -> None:
    assert ldso.elf_flags(cls, machine, flags) == expected


def test_library_read_from_tar_reference(tmp_path: Path) -> None:
    """Package files point into a tar; the reader seeks inside it instead of loading the file."""
    payload = host_lib("libssl.so.3")
    tar_path = tmp_path / "data.tar"
    with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as tf:
        pad = tarfile.TarInfo("pad")
        pad.size = 1000
        tf.addfile(pad, io.BytesIO(bytes(1000)))
        info = tarfile.TarInfo("usr/lib/libssl.so.3")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    with tarfile.open(tar_path) as tf:
        member = tf.getmember("usr/lib/libssl.so.3")
        ref = TarRef(tar_path, member.offset_data, member.size)
    t = Tree()
    t.mkdir_all("lib", 0o755)
    t.put("lib/libssl.so.3", Node("reg", 0o755, size=len(payload), content=ref))
    t.write_file("etc/ld.so.conf", b"")
    cache = ldso.build_cache(t)
    assert cache.entries == (ldso.CacheEntry(X86_64, "libssl.so.3", "/lib/libssl.so.3"),)


def test_hard_link_and_symlink_loops() -> None:
    t = Tree()
    t.mkdir_all("lib", 0o755)
    target = t.write_file("lib/libssl.so.3", host_lib("libssl.so.3"))
    t.mkdir_all("opt/l", 0o755)
    t.put("opt/l/libssl.so.3", Node("lnk", 0o755, linkname="lib/libssl.so.3", target=target))
    link(t, "opt/l/libloop.so.1", "libloop.so.1")
    cache = ldso.build_cache(t, dirs=["/lib", "/opt/l"])
    assert [e.value for e in cache.entries] == ["/lib/libssl.so.3", "/opt/l/libssl.so.3"]


def test_damaged_objects_are_skipped() -> None:
    data = host_lib("libssl.so.3")
    t = Tree()
    add(t, "lib/libssl.so.3", data)
    add(t, "lib/libcut.so.1", data[:700])
    broken = bytearray(data)
    broken[32:40] = (2**62).to_bytes(8, "little")  # e_phoff far beyond the file
    add(t, "lib/libbroken.so.1", bytes(broken))
    add(t, "lib/libempty.so.1", b"")
    cache = ldso.build_cache(t, dirs=["/lib"])
    assert [e.key for e in cache.entries] == ["libssl.so.3"]


def test_empty_root_matches_ldconfig(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "ld.so.conf").write_bytes(b"")
    real = run_ldconfig(tmp_path).read_bytes()
    generator = ldso.parse(real).extensions[0].data.decode()
    t = Tree()
    t.write_file("etc/ld.so.conf", b"")
    assert ldso.render(ldso.build_cache(t, generator=generator)) == real
