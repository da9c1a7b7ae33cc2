"""OCI layer compression, image JSON, OCI layout and docker-archive transports.

The expected JSON strings below are written from the rules in the apko notes §3.4 (ggcr field
order, Go escaping, apko's labels/env/history rules), not produced by the code under test.
Peer checks (skopeo, dockerd 20.10 and 26.1, gzip, pigz) run the real programs and fail, never
skip, when one is missing.
"""

from __future__ import annotations

import gzip as pygzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest

from distroless import tarball
from distroless.oci import dockerarchive, image as im, layout
from distroless.oci.gojson import marshal, rfc3339
from distroless.oci.gzip import (
    FileSpan,
    DICT_SIZE,
    FINAL_EMPTY,
    GZIP_HEADER,
    CompressionError,
    deflate_block,
    gzip_compress,
    iter_blocks,
    zstd_compress,
)
from distroless.oci.shlex import ShlexError, split

HEX_A = "sha256:" + "a" * 64
HEX_B = "sha256:" + "b" * 64


def sample_data(size: int, seed: int = 1) -> bytes:
    """Text, random (binary-like) and zero runs, like a real layer."""
    rnd = random.Random(seed)
    parts = []
    total = 0
    while total < size:
        kind = rnd.randrange(3)
        n = rnd.randrange(1, 64 << 10)
        if kind == 0:
            part = (b"line %d of some config text, key=value\n" % rnd.randrange(1000)) * (n // 40 + 1)
        elif kind == 1:
            part = rnd.randbytes(n)
        else:
            part = bytes(n)
        parts.append(part)
        total += len(part)
    return b"".join(parts)[:size]


def tar_of(files: dict[str, bytes]) -> bytes:
    out = b""
    for name, data in files.items():
        out += tarball.encode_header(tarball.Header(name=name, size=len(data))) + data
        out += tarball.padding(len(data))
    return out + tarball.END_OF_ARCHIVE


def compress_bytes(data: bytes, **kw) -> bytes:
    buf = io.BytesIO()
    result = gzip_compress(data, buf, **kw)
    out = buf.getvalue()
    assert result.size == len(out)
    assert result.digest == "sha256:" + hashlib.sha256(out).hexdigest()
    assert result.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert result.uncompressed_size == len(data)
    return out


# --------------------------------------------------------------------------- gzip


def test_gzip_header_and_empty_stream_bytes():
    out = compress_bytes(b"")
    assert out[:10] == bytes.fromhex("1f8b080000096e8800ff")
    # empty sync-flushed block, final empty stored block, CRC32 0, ISIZE 0
    assert out == GZIP_HEADER + b"\x00\x00\x00\xff\xff" + FINAL_EMPTY + bytes(8)
    assert pygzip.decompress(out) == b""


@pytest.mark.parametrize("size", [1, 1000, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 12345])
def test_gzip_round_trip_python(size):
    data = sample_data(size, seed=size)
    out = compress_bytes(data)
    assert pygzip.decompress(out) == data
    assert out[-8:] == zlib.crc32(data).to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")


@pytest.mark.parametrize("engine,level", [("isal", 0), ("isal", 1), ("isal", 2), ("isal", 3), ("zlib", 1), ("zlib", 6), ("zlib", 9)])
def test_gzip_same_bytes_for_1_and_4_threads(engine, level):
    data = sample_data(5 * (1 << 20) + 777, seed=level)
    one = compress_bytes(data, engine=engine, level=level, threads=1)
    four = compress_bytes(data, engine=engine, level=level, threads=4)
    assert one == four
    assert pygzip.decompress(one) == data


def test_gzip_independent_of_input_chunking(tmp_path):
    data = sample_data(2 * (1 << 20) + 99, seed=7)
    whole = compress_bytes(data, threads=2)
    rnd = random.Random(3)
    chunks, i = [], 0
    while i < len(data):
        n = rnd.randrange(1, 300_000)
        chunks.append(data[i:i + n])
        i += n
    assert compress_bytes_iter(chunks) == whole
    path = tmp_path / "in.tar"
    path.write_bytes(data)
    with open(path, "rb") as f:
        buf = io.BytesIO()
        gzip_compress(f, buf, threads=3)
    assert buf.getvalue() == whole


def compress_bytes_iter(chunks: list[bytes]) -> bytes:
    buf = io.BytesIO()
    gzip_compress(iter(chunks), buf, threads=2)
    return buf.getvalue()


def test_gzip_block_framing_matches_pgzip():
    """1 MiB pieces, each a raw deflate stream that needs only the previous 16 KiB as dictionary,
    ends with a sync flush, and never sets BFINAL; then the final empty stored block."""
    bs = 1 << 20
    data = sample_data(3 * bs + 5000, seed=11)
    out = compress_bytes(data, threads=2, engine="zlib", level=5)
    blocks = list(iter_blocks(data, bs))
    assert [len(b) for b in blocks] == [bs, bs, bs, 5000]
    pieces, tail = [], b""
    for block in blocks:
        pieces.append(deflate_block(block, tail, engine="zlib", level=5))
        tail = block[-DICT_SIZE:]
    crc = zlib.crc32(data).to_bytes(4, "little") + len(data).to_bytes(4, "little")
    assert out == GZIP_HEADER + b"".join(pieces) + FINAL_EMPTY + crc
    tail = b""
    for piece, block in zip(pieces, blocks):
        assert piece.endswith(b"\x00\x00\xff\xff")  # sync flush: empty stored block, byte aligned
        d = zlib.decompressobj(-15, zdict=tail) if tail else zlib.decompressobj(-15)
        assert d.decompress(piece) == block  # decodable with a 16 KiB dictionary alone
        assert not d.eof  # no BFINAL inside a piece
        tail = block[-DICT_SIZE:]


def test_gzip_exact_multiple_of_block_adds_empty_piece():
    bs = 1 << 20
    data = sample_data(2 * bs, seed=5)
    out = compress_bytes(data)
    # pgzip flushes each full block as it fills; Close then compresses an empty buffer.
    assert out[-18:-8] == b"\x00\x00\x00\xff\xff" + FINAL_EMPTY


@pytest.mark.parametrize("tool", ["gzip", "pigz"])
def test_gzip_peer_tools_accept_stream(tmp_path, tool):
    exe = shutil.which(tool)
    if exe is None:
        pytest.fail(f"{tool} is not installed (apt-get install -y {tool}); it checks our gzip framing")
    data = sample_data(2 * (1 << 20) + 4321, seed=13)
    path = tmp_path / "layer.tar.gz"
    path.write_bytes(compress_bytes(data, threads=2))
    subprocess.run([exe, "-t", str(path)], check=True, capture_output=True)
    proc = subprocess.run([exe, "-dc", str(path)], check=True, capture_output=True)
    assert proc.stdout == data


def test_gzip_rejects_bad_levels():
    for engine, level in (("isal", 4), ("isal", -1), ("zlib", 10), ("brotli", 1), ("brotli", None)):
        with pytest.raises(CompressionError):
            gzip_compress(b"x", io.BytesIO(), engine=engine, level=level)  # type: ignore[arg-type]


def test_zstd_deterministic_and_plain_frame():
    import zstandard

    data = sample_data(3 * (1 << 20) + 10, seed=21)
    outs = []
    for threads in (1, 4):
        buf = io.BytesIO()
        r = zstd_compress(data, buf, threads=threads)
        outs.append(buf.getvalue())
        assert r.media_type == "application/vnd.oci.image.layer.v1.tar+zstd"
        assert r.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
        assert r.digest == "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()
    assert outs[0] == outs[1]
    frame = outs[0]
    assert frame[:4] == b"\x28\xb5\x2f\xfd"
    fhd = frame[4]
    assert fhd & 0xC0 == 0 and fhd & 0x20 == 0  # no content size, not single-segment
    assert fhd & 0x04 == 0 and fhd & 0x03 == 0  # no checksum, no dictionary id
    assert zstandard.ZstdDecompressor().decompressobj().decompress(frame) == data


# --------------------------------------------------------------------------- JSON


def test_go_json_escaping():
    value = {"k<": "a<b>&c\u2028\u2029\b\f\n\r\t\x01\x7f é\"\\"}
    assert marshal(value) == (
        '{"k\\u003c":"a\\u003cb\\u003e\\u0026c\\u2028\\u2029\\b\\f\\n\\r\\t\\u0001\x7f é\\"\\\\"}'
    ).encode()


def test_rfc3339():
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1700000000) == "2023-11-14T22:13:20Z"


def full_config() -> im.ConfigFile:
    return im.apko_config(
        platform=im.Platform.from_arch("arm/v7"),
        diff_ids=[HEX_A],
        created=1700000000,
        annotations={"org.opencontainers.image.title": "T<1>", "org.opencontainers.image.vendor": "V&Co"},
        vcs_url="https://github.com/x/y@abc123",
        entrypoint_command='/bin/sh -c "echo hi" # comment',
        cmd="--flag 'a b'",
        env={"FOO": "bar", "PATH": "/bin"},
        user="65532",
        working_dir="/work",
        stop_signal="SIGTERM",
        volumes=["/data", "/cache"],
    )


def test_config_json_layout():
    assert im.config_json(full_config()).decode() == (
        '{"architecture":"arm","author":"github.com/chainguard-dev/apko",'
        '"created":"2023-11-14T22:13:20Z",'
        '"history":[{"author":"apko","created":"2023-11-14T22:13:20Z","created_by":"apko",'
        '"comment":"T\\u003c1\\u003e by V\\u0026Co"}],'
        '"os":"linux",'
        '"rootfs":{"type":"layers","diff_ids":["' + HEX_A + '"]},'
        '"config":{"Cmd":["--flag","a b"],"Entrypoint":["/bin/sh","-c","echo hi"],'
        '"Env":["FOO=bar","PATH=/bin","SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],'
        '"Labels":{"org.opencontainers.image.created":"2023-11-14T22:13:20Z",'
        '"org.opencontainers.image.revision":"abc123",'
        '"org.opencontainers.image.source":"https://github.com/x/y",'
        '"org.opencontainers.image.title":"T\\u003c1\\u003e",'
        '"org.opencontainers.image.vendor":"V\\u0026Co"},'
        '"User":"65532","Volumes":{"/cache":{},"/data":{}},"WorkingDir":"/work",'
        '"StopSignal":"SIGTERM"},'
        '"variant":"v7"}'
    )


def test_config_minimal_and_history_comments():
    p = im.Platform.from_arch("amd64")
    cfg = im.apko_config(platform=p, diff_ids=[HEX_A], created=0)
    assert im.config_json(cfg).decode() == (
        '{"architecture":"amd64","author":"github.com/chainguard-dev/apko",'
        '"created":"1970-01-01T00:00:00Z",'
        '"history":[{"author":"apko","created":"1970-01-01T00:00:00Z","created_by":"apko",'
        '"comment":"This is an apko single-layer image"}],'
        '"os":"linux","rootfs":{"type":"layers","diff_ids":["' + HEX_A + '"]},'
        '"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/sbin:/bin",'
        '"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],'
        '"Labels":{"org.opencontainers.image.created":"1970-01-01T00:00:00Z"}}}'
    )
    multi = im.apko_config(platform=p, diff_ids=[HEX_A, HEX_B], created=0)
    hist = json.loads(im.config_json(multi))["history"]
    assert hist == [{"author": "apko", "created": "1970-01-01T00:00:00Z", "created_by": "apko"}] * 2
    assert im.history_comment({"org.opencontainers.image.title": "T"}, 1) == im.SINGLE_LAYER_COMMENT
    shell = im.apko_config(platform=p, diff_ids=[HEX_A], created=0, shell_fragment="echo $HOME | cat")
    assert json.loads(im.config_json(shell))["config"]["Entrypoint"] == ["/bin/sh", "-c", "echo $HOME | cat"]


def test_environment_sorting_and_defaults():
    assert im.environment({"A_B": "1", "A": "2", "SSL_CERT_FILE": "/x"}) == (
        "A=2", "A_B=1",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/sbin:/bin",
        "SSL_CERT_FILE=/x",
    )


@pytest.mark.parametrize("text,words", [
    ("/bin/sh -l", ["/bin/sh", "-l"]),
    ("  a\tb\nc  ", ["a", "b", "c"]),
    ("echo 'a b' \"c d\"", ["echo", "a b", "c d"]),
    ('x "a\\db"', ["x", "adb"]),  # backslash escapes anything inside double quotes
    ("x 'a\\db'", ["x", "a\\db"]),  # ...and nothing inside single quotes
    ("a\\ b c", ["a b", "c"]),
    ("a#b # comment here\nnext", ["a#b", "next"]),  # '#' only starts a comment at a word start
    ("# all comment", []),
    ('"" x', ["", "x"]),
    ("a'b'\"c\"d", ["abcd"]),
    ("", []),
])
def test_google_shlex_split(text, words):
    assert split(text) == words


@pytest.mark.parametrize("text", ["'open", '"open', "trailing\\", '"esc\\'])
def test_google_shlex_errors(text):
    with pytest.raises(ShlexError):
        split(text)


def test_manifest_json_layout():
    config = im.Descriptor(im.OCI_CONFIG, 640, HEX_A)
    layer = im.Descriptor(im.OCI_LAYER_GZIP, 1234, HEX_B)
    assert im.manifest_json(config, [layer], {"z": "1", "a": "<"}).decode() == (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        '"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":640,"digest":"' + HEX_A + '"},'
        '"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":1234,"digest":"' + HEX_B + '"}],'
        '"annotations":{"a":"\\u003c","z":"1"}}'
    )


def fake_image(arch: str) -> im.Image:
    p = im.Platform.from_arch(arch)
    layer = im.Layer(HEX_B, 10, HEX_A, Path("/nonexistent"))
    cfg = im.apko_config(platform=p, diff_ids=[HEX_A], created=0)
    return im.build_image(cfg, [layer], im.image_annotations({}, 0))


def test_index_order_and_artifact_type():
    arches = ["arm64", "amd64", "arm/v7", "386", "arm/v6", "s390x"]
    index = im.build_index([fake_image(a) for a in arches], im.image_annotations({"b": "2"}, 0))
    obj = json.loads(index.manifest)
    order = [m["platform"]["architecture"] + ("/" + m["platform"]["variant"] if "variant" in m["platform"] else "")
             for m in obj["manifests"]]
    assert order == ["386", "amd64", "arm/v6", "arm/v7", "arm64", "s390x"]
    assert [im_.platform.arch for im_ in index.images] == order
    first = fake_image("arm/v6")
    expected_entry = (
        '{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":%d,"digest":"%s",'
        '"platform":{"architecture":"arm","os":"linux","variant":"v6"},'
        '"artifactType":"application/vnd.oci.image.config.v1+json"}' % (len(first.manifest), first.digest)
    )
    assert expected_entry in index.manifest.decode()
    assert index.manifest.decode().startswith(
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[')
    assert index.manifest.decode().endswith(
        '],"annotations":{"b":"2","org.opencontainers.image.created":"1970-01-01T00:00:00Z"}}')
    with pytest.raises(im.ImageError):
        im.build_index([fake_image("amd64"), fake_image("amd64")])


def test_image_annotations_vcs():
    assert im.image_annotations({"x": "1"}, 0, "https://g/r") == {
        "x": "1", "org.opencontainers.image.created": "1970-01-01T00:00:00Z"}
    assert im.image_annotations({}, 0, "https://g/r@c0ffee") == {
        "org.opencontainers.image.source": "https://g/r",
        "org.opencontainers.image.revision": "c0ffee",
        "org.opencontainers.image.created": "1970-01-01T00:00:00Z"}


def test_platform_mapping():
    assert im.Platform.from_arch("arm/v6").apk_arch == "armhf"
    assert im.Platform.from_arch("amd64").apk_arch == "x86_64"
    assert im.Platform.from_arch("arm64").to_json() == {"architecture": "arm64", "os": "linux"}


# --------------------------------------------------------------------------- real images


def make_images(tmp_path: Path, arches=("amd64", "arm64", "arm/v7"), compression="gzip") -> im.Index:
    images = []
    ann = {"org.opencontainers.image.title": "Test", "org.opencontainers.image.vendor": "Us"}
    for i, arch in enumerate(arches):
        files = {"etc/hello": f"hello {arch}\n".encode(), "usr/share/blob": sample_data(300_000, seed=i)}
        layer = im.write_layer(tar_of(files), tmp_path / "cache", compression=compression)
        cfg = im.apko_config(platform=im.Platform.from_arch(arch), diff_ids=[layer.diff_id], created=0,
                             annotations=ann, entrypoint_command="/bin/sh -l")
        images.append(im.build_image(cfg, [layer], im.image_annotations(ann, 0)))
    return im.build_index(images, im.image_annotations(ann, 0))


def test_write_layer_names_blob_by_digest(tmp_path):
    data = tar_of({"a": b"1"})
    layer = im.write_layer(data, tmp_path)
    assert layer.path == tmp_path / layer.digest.removeprefix("sha256:")
    assert pygzip.decompress(layer.path.read_bytes()) == data
    assert [p.name for p in tmp_path.iterdir()] == [layer.path.name]  # no temp files left


def test_layout_write_and_read_back(tmp_path):
    index = make_images(tmp_path)
    out = tmp_path / "layout"
    out.mkdir()
    layout.write_layout(out, index)
    assert (out / "oci-layout").read_bytes() == b'{\n    "imageLayoutVersion": "1.0.0"\n}'
    assert (out / "index.json").read_bytes() == index.manifest
    blobs = sorted(p.name for p in (out / "blobs" / "sha256").iterdir())
    expected = set()
    for image in index.images:
        expected |= {image.digest, image.config_digest, *(l.digest for l in image.layers)}
    assert blobs == sorted(d.removeprefix("sha256:") for d in expected)
    for name in blobs:
        assert hashlib.sha256((out / "blobs" / "sha256" / name).read_bytes()).hexdigest() == name
    back = layout.read_layout(out).as_index(verify_layers=True)
    assert back.digest == index.digest
    assert [i.digest for i in back.images] == [i.digest for i in index.images]
    assert [i.platform for i in back.images] == [i.platform for i in index.images]
    assert [l.diff_id for i in back.images for l in i.layers] == [l.diff_id for i in index.images for l in i.layers]
    # Writing again is a no-op on the blobs and leaves no temp files.
    layout.write_layout(out, index)
    assert not [p for p in out.rglob("*.tmp")]


def test_layout_from_symlinked_layer_blobs_holds_regular_files(tmp_path):
    """A sandboxed build step sees its input blobs as symlinks into the output base: the layout
    must hold the blob's bytes as a regular file, never a link(2) of the symlink itself."""
    index = make_images(tmp_path, arches=("amd64",))
    image = index.images[0]
    links = tmp_path / "sandbox"
    links.mkdir()
    layers = []
    for l in image.layers:
        link = links / l.path.name
        link.symlink_to(l.path.resolve())  # absolute, as linux-sandbox makes them
        layers.append(im.Layer(l.digest, l.size, l.diff_id, link, l.media_type))
    linked = im.build_image(im.apko_config(platform=image.platform, diff_ids=[l.diff_id for l in layers],
                                           created=0, annotations={}), layers, {})
    out = tmp_path / "layout"
    layout.write_layout(out, im.build_index([linked], {}))
    blobs = list((out / "blobs" / "sha256").iterdir())
    assert blobs and all(p.is_file() and not p.is_symlink() for p in blobs), [p for p in blobs if p.is_symlink()]
    for l in layers:
        assert layout.blob_path(out, l.digest).read_bytes() == l.path.read_bytes()


def test_layout_append_keeps_existing_entries(tmp_path):
    index = make_images(tmp_path, arches=("amd64", "arm64"))
    out = tmp_path / "layout"
    layout.append_image(out, index.images[0], {"org.opencontainers.image.ref.name": "one"})
    layout.append_index(out, index, {"org.opencontainers.image.ref.name": "all"})
    lay = layout.read_layout(out)
    assert [d.media_type for d in lay.manifests] == [im.OCI_MANIFEST, im.OCI_INDEX]
    assert lay.index_json.startswith(b'{\n   "schemaVersion": 2,')  # ggcr MarshalIndent, 3 spaces
    assert lay.images()[0].digest == index.images[0].digest
    assert lay.indexes()[0].digest == index.digest
    with pytest.raises(im.ImageError):
        (out / "blobs" / "sha256" / index.images[1].config_digest.removeprefix("sha256:")).write_bytes(b"x")
        lay.indexes()


def test_skopeo_reads_layout(tmp_path, peers):
    """skopeo (containers/image) inspects and copies what we wrote, verifying every blob digest."""
    skopeo = peers.skopeo
    index = make_images(tmp_path)
    single = tmp_path / "single"
    single.mkdir()
    layout.write_layout(single, im.build_index([index.images[0]]))
    proc = subprocess.run([skopeo, "inspect", f"oci:{single}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["Digest"] == index.images[0].digest
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert info["Layers"] == [l.digest for l in index.images[0].layers]
    assert info["Labels"]["org.opencontainers.image.title"] == "Test"

    multi = tmp_path / "multi"
    layout.append_index(multi, index, {"org.opencontainers.image.ref.name": "latest"})
    proc = subprocess.run([skopeo, "inspect", "--raw", f"oci:{multi}:latest"], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == index.manifest
    proc = subprocess.run([skopeo, "--override-arch", "arm", "--override-variant", "v7", "inspect",
                           f"oci:{multi}:latest"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    arm_v7 = next(i for i in index.images if i.platform.arch == "arm/v7")
    info = json.loads(proc.stdout)
    assert info["Digest"] == index.digest  # skopeo names the reference's (top-level) digest
    assert info["Architecture"] == "arm"
    assert info["Layers"] == [l.digest for l in arm_v7.layers]
    proc = subprocess.run([skopeo, "copy", "--all", f"oci:{multi}:latest", f"dir:{tmp_path / 'copy'}"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- docker-archive


@pytest.mark.parametrize("ref,name", [
    ("foo", "index.docker.io/library/foo:latest"),
    ("foo:1", "index.docker.io/library/foo:1"),
    ("org/foo:1", "index.docker.io/org/foo:1"),
    ("docker.io/foo", "index.docker.io/library/foo:latest"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    ("ghcr.io/x/y", "ghcr.io/x/y:latest"),
])
def test_tag_name(ref, name):
    assert dockerarchive.tag_name(ref) == name


def test_tag_name_rejects():
    for bad in ("Foo:1", "foo@sha256:" + "a" * 64, "foo:-x", ""):
        with pytest.raises(im.ImageError):
            dockerarchive.tag_name(bad)


def test_docker_archive_layout(tmp_path):
    index = make_images(tmp_path)
    path = tmp_path / "image.tar"
    assert dockerarchive.write_docker_archive(path, index, ["example/app:1.0"]) == index.digest
    data = path.read_bytes()
    assert data.endswith(bytes(1024)) and len(data) % 512 == 0
    with tarfile.open(path) as tf:
        members = tf.getmembers()
        names = [m.name for m in members]
        for m in members:
            assert m.mode == 0o644 and m.uid == 0 and m.gid == 0 and m.mtime == 0 and m.isreg()
        manifest = json.loads(tf.extractfile("manifest.json").read())
        assert tf.extractfile("index.json").read() == index.manifest
        for image in index.images:
            assert tf.extractfile(image.digest).read() == image.manifest
            assert tf.extractfile(image.config_digest).read() == image.config
            for layer in image.layers:
                assert tf.extractfile(layer.digest.removeprefix("sha256:") + ".tar.gz").read() == layer.path.read_bytes()
    assert data[257:265] == b"ustar\x0000"  # Go writes USTAR headers
    by_tag = {e["RepoTags"][0]: e for e in manifest}
    assert list(by_tag) == ["index.docker.io/example/app:1.0-amd64", "index.docker.io/example/app:1.0-arm64",
                            "index.docker.io/example/app:1.0-arm_v7"]
    assert list(manifest[0]) == ["Config", "RepoTags", "Layers"]
    # config, its layers, per image (manifest.json order); manifest.json; manifests; index.json
    expected = []
    for e in manifest:
        expected += [e["Config"], *e["Layers"]]
    expected += ["manifest.json", *(i.digest for i in index.images), "index.json"]
    assert names == expected


def test_docker_archive_dedups_layers_and_needs_tag(tmp_path):
    index = make_images(tmp_path, arches=("amd64",))
    image = index.images[0]
    twin = im.build_image(
        im.apko_config(platform=im.Platform.from_arch("arm64"), diff_ids=[image.layers[0].diff_id], created=0),
        image.layers)
    both = im.build_index([image, twin])
    path = tmp_path / "t.tar"
    dockerarchive.write_docker_archive(path, both, ["a:b", "c"])
    with tarfile.open(path) as tf:
        names = [m.name for m in tf.getmembers()]
        manifest = json.loads(tf.extractfile("manifest.json").read())
    assert names.count(image.layers[0].digest.removeprefix("sha256:") + ".tar.gz") == 1
    assert manifest[0]["RepoTags"] == ["index.docker.io/library/a:b-amd64", "index.docker.io/library/c:latest-amd64"]
    with pytest.raises(im.ImageError):
        dockerarchive.write_docker_archive(tmp_path / "x.tar", both, [])
    assert not (tmp_path / "x.tar").exists()


@pytest.mark.parametrize("which", ["docker20", "docker26"])
def test_docker_load_accepts_archive(tmp_path, peers, which):
    docker = getattr(peers, which)
    index = make_images(tmp_path)
    repo = f"distroless-oci-test/{which}"
    path = tmp_path / "image.tar"
    dockerarchive.write_docker_archive(path, index, [f"{repo}:t"])
    tags = [f"{repo}:t-amd64", f"{repo}:t-arm64", f"{repo}:t-arm_v7"]
    try:
        out = docker.run("load", "-i", str(path)).stdout
        for tag in tags:
            assert f"Loaded image: {tag}" in out
        info = json.loads(docker.run("image", "inspect", tags[0]).stdout)[0]
        assert info["Architecture"] == "amd64" and info["Os"] == "linux"
        assert info["Config"]["Entrypoint"] == ["/bin/sh", "-l"]
        assert info["RootFS"]["Layers"] == [l.diff_id for l in index.images[0].layers]
        arm = json.loads(docker.run("image", "inspect", tags[2]).stdout)[0]
        assert arm["Architecture"] == "arm" and arm.get("Variant") == "v7"
    finally:
        docker.run("rmi", *tags, check=False)


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_file_spans_compress_like_the_same_bytes(tmp_path, compression: str, threads: int) -> None:
    """Layer writing hands the compressor spans of package tars, read in place into a ring of
    reused block buffers: with many more blocks than buffers, the output is still the bytes'."""
    data = sample_data(300_000, seed=5)
    src = tmp_path / "data"
    src.write_bytes(b"header" + data)
    rnd = random.Random(9)
    fd = os.open(src, os.O_RDONLY)
    try:
        pieces: list = []
        i = 0
        while i < len(data):
            n = rnd.randrange(1, 20_000)
            n = min(n, len(data) - i)
            pieces.append(FileSpan(fd, 6 + i, n) if rnd.random() < 0.5 else data[i:i + n])
            i += n
        if compression == "gzip":
            want, got = io.BytesIO(), io.BytesIO()
            gzip_compress(data, want, threads=threads, block_size=4096)  # ~73 blocks through a ring of ≤ 8
            gzip_compress(iter(pieces), got, threads=threads, block_size=4096)
        else:
            want, got = io.BytesIO(), io.BytesIO()
            zstd_compress(data, want, threads=threads)
            zstd_compress(iter(pieces), got, threads=threads)
        assert got.getvalue() == want.getvalue()
        with pytest.raises(OSError, match="ends before"):
            gzip_compress(iter([FileSpan(fd, len(data), 100)]), io.BytesIO(), threads=threads)
    finally:
        os.close(fd)
