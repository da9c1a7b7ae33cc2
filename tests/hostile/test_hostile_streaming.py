"""Item 4: memory from tiny inputs. Per-entry state is bounded and the datahash is checked
before anything of the data member is parsed or kept; a download stops at the index's size.

The packages are signed by a key the verifier trusts (the worst case: a hostile repository),
except the swapped-data case, where the control member is genuine and only the data differs.
"""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path

import pytest

from distroless.apk import index as apkindex
from distroless.apk.gzmember import MemberWriter, gzip_member
from distroless.tarball import END_OF_ARCHIVE, Header, encode_header, padding
from httpserver import StaticServer
from hostile.apkcraft import craft_apk, new_key, reg, simple_apk, write_repo
from hostile.harness import cli, run_bounded

MEM_MB = 500


def _gzip_stream(chunks) -> bytes:
    out = io.BytesIO()
    w = MemberWriter(out, level=1)
    for c in chunks:
        w.write(c)
    w.close()
    return out.getvalue()


ENTRIES = 327_680  # a quarter past the entry cap (262,144): enough to meet it, no more


@functools.cache  # two tests read it; compressing 160 MB once is enough
def many_empty_entries() -> bytes:
    """327,680 identical empty-file headers: 160 MiB of tar, under 2 MB gzip'd."""
    one = encode_header(Header("f", mode=0o644, size=0, uname="root", gname="root"))
    block = one * 2048
    return _gzip_stream([block] * (ENTRIES // 2048) + [END_OF_ARCHIVE])


def huge_pax_header(size: int) -> bytes:
    head = encode_header(Header("././@PaxHeader", type=b"x", size=size))
    zeros = bytes(1 << 20)
    return _gzip_stream([head] + [zeros] * (size >> 20) + [padding(size), END_OF_ARCHIVE])


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return new_key(tmp_path_factory.mktemp("key"))


def _verify(path: Path, pub: Path):
    return run_bounded(cli("package", "verify", str(path), "--keyring", str(pub)), mem_mb=MEM_MB, cpu_s=60,
                       cwd=path.parent)


def test_entries_past_the_cap_are_refused_at_the_entry_cap(tmp_path: Path, key) -> None:
    signing, pub = key
    apk = tmp_path / "many.apk"
    craft_apk(apk, "many", many_empty_entries(), signing)
    out = _verify(apk, pub)
    line = out.assert_one_line_error("many.apk", "data member", "more than 262144 entries", stream="stdout")
    print(f"\n{ENTRIES} empty entries ({apk.stat().st_size / 1e6:.1f} MB): {line[-40:]!r} after {out.cpu_s:.1f} s CPU, "
          f"peak RSS {out.peak_rss_mb:.0f} MB")


def test_a_swapped_data_member_is_refused_before_it_is_parsed(tmp_path: Path, key) -> None:
    signing, pub = key
    genuine = gzip_member(b"".join(encode_header(h) + d + padding(len(d)) for h, d in [reg("ok", b"fine\n")])
                          + END_OF_ARCHIVE)
    apk = tmp_path / "swapped.apk"
    craft_apk(apk, "swapped", many_empty_entries(), signing, datahash=hashlib.sha256(genuine).hexdigest())
    out = _verify(apk, pub)
    out.assert_one_line_error("swapped.apk", "data member", "datahash mismatch", stream="stdout")
    assert out.peak_rss_mb < 100  # nothing of the 160 MiB tar was parsed
    print(f"\nswapped data member: refused after {out.cpu_s:.2f} s CPU, peak RSS {out.peak_rss_mb:.0f} MB")


def test_a_huge_pax_header_is_refused_before_it_is_read(tmp_path: Path, key) -> None:
    signing, pub = key
    apk = tmp_path / "pax.apk"
    craft_apk(apk, "pax", huge_pax_header(256 << 20), signing)
    out = _verify(apk, pub)
    out.assert_one_line_error("pax.apk", "data member", "PAX header of 268435456 bytes", stream="stdout")
    print(f"\n256 MiB PAX header ({apk.stat().st_size / 1e6:.1f} MB): refused after {out.cpu_s:.2f} s CPU, "
          f"peak RSS {out.peak_rss_mb:.0f} MB")


def test_an_index_of_tiny_records_is_refused_at_the_record_cap(tmp_path: Path, key) -> None:
    signing, pub = key
    text = b"P:a\nV:1\n\n" * (apkindex.MAX_INDEX_PACKAGES + 1)
    tar = encode_header(Header("APKINDEX", mode=0o644, size=len(text))) + text + padding(len(text)) + END_OF_ARCHIVE
    path = tmp_path / "APKINDEX.tar.gz"
    path.write_bytes(apkindex.sign_body(gzip_member(tar), signing))
    out = run_bounded(cli("package", "verify", str(path), "--keyring", str(pub)), mem_mb=MEM_MB, cpu_s=60,
                      cwd=tmp_path)
    out.assert_one_line_error("APKINDEX.tar.gz", "1000001 package records", "cap of 1000000", stream="stdout")
    print(f"\n1,000,001 tiny index records ({path.stat().st_size / 1e3:.0f} kB): refused after {out.cpu_s:.2f} s "
          f"CPU, peak RSS {out.peak_rss_mb:.0f} MB")


def test_a_download_larger_than_the_index_says_is_cut_off(tmp_path: Path, key) -> None:
    signing, pub = key
    repo = tmp_path / "repo"
    (repo / "x86_64").mkdir(parents=True)
    apk = repo / "x86_64" / "grow-1.0-r0.apk"
    pkg = simple_apk(apk, "grow", [reg("f", b"data\n")], signing)
    write_repo(repo, [pkg], signing)
    with open(apk, "ab") as f:  # the server now sends more than the index's S:
        f.write(bytes(4 << 20))
    server = StaticServer(repo).start()
    try:
        (tmp_path / "image.yaml").write_text(f"contents:\n  repositories: [{server.url}]\n  keyring: [{pub}]\n"
                                             "  packages: [grow]\narchs: [x86_64]\n")
        out = run_bounded(cli("image", "build-minirootfs", "image.yaml", "rootfs.tar", "--cache-dir",
                              str(tmp_path / "cache")), mem_mb=MEM_MB, cpu_s=60, cwd=tmp_path)
    finally:
        server.stop()
    out.assert_one_line_error(f"{server.url}/x86_64/grow-1.0-r0.apk", f"cap of {pkg.size} bytes")
    cache = tmp_path / "cache"
    assert not list((cache / "tmp").iterdir())
    assert not (cache / "expanded").exists() or not list((cache / "expanded").iterdir())
    assert not (tmp_path / "rootfs.tar").exists()
