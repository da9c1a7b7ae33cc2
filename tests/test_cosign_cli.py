"""cosign's verbs, checked against real cosign 2.5 on the same images and files.

For every command a script might pipe somewhere (`verify`, `download`, `tree`, `triangulate`,
`public-key`, `sign-blob`), our stdout is compared byte for byte with cosign's on the same
image; signatures cross both ways (`sign-blob`/`verify-blob`, `save`/`load`, `copy`).
"""

from __future__ import annotations

import base64
import json
import uuid

from distroless.registry.reference import parse_reference
from test_cosign_interop import SPDX, assert_clean_failure, cosign, env, keypair, ours, pushed  # noqa: F401

TLOG = "--insecure-ignore-tlog=true"
HTTP = "--allow-insecure-registry"


def _cosign_header(stderr: str) -> str:
    """cosign's stderr minus its warning about skipping the transparency log."""
    return "\n".join(l for l in stderr.splitlines() if not l.startswith("WARNING: Skipping tlog")).strip("\n")


def _tree_sections(text: str) -> tuple[str, list[tuple[str, ...]]]:
    """`tree` output as (header, sorted sections), each section its lines in order."""
    lines = text.splitlines()
    sections: list[list[str]] = []
    for line in lines[1:]:
        if line.startswith("└── "):
            sections.append([line])
        else:
            sections[-1].append(line)
    return lines[0], sorted(tuple(s) for s in sections)


def _signed_twice(peers, tmp_path, env, keypair, pushed):
    """One cosign signature with an annotation, one of ours without: both verify."""
    key, pub = keypair
    ref, digest = pushed
    cosign(peers, env, tmp_path, "sign", "--yes", "--key", key, "--tlog-upload=false", HTTP,
           "-a", "team=qa", f"{ref.name}@{digest}")
    ours(env, tmp_path, "sign", "--key", key, str(ref))
    return ref, digest, pub


def test_verify_prints_what_cosign_prints(peers, tmp_path, env, keypair, pushed):
    ref, digest, pub = _signed_twice(peers, tmp_path, env, keypair, pushed)
    for extra in ([], ["-o", "text"], ["-a", "team=qa"], ["--check-claims=false"]):
        theirs = cosign(peers, env, tmp_path, "verify", "--key", pub, TLOG, HTTP, *extra, str(ref))
        mine = ours(env, tmp_path, "verify", "--key", pub, TLOG, "--offline", *extra, str(ref))
        assert mine.stdout == theirs.stdout, extra  # the same bytes, hence the same `jq` results
        assert mine.stderr.strip("\n") == _cosign_header(theirs.stderr), extra
    arr = json.loads(mine.stdout)
    assert isinstance(arr, list) and len(arr) == 2
    assert {p["optional"] and p["optional"].get("team") for p in arr} == {"qa", None}
    out = tmp_path / "verified.json"
    ours(env, tmp_path, "verify", "--key", pub, "--output-file", out, str(ref))
    assert json.loads(out.read_text()) == json.loads(cosign(peers, env, tmp_path, "verify", "--key", pub, TLOG,
                                                            HTTP, str(ref)).stdout)
    for flag in ("-q", "--log-level=warn"):
        quiet = ours(env, tmp_path, "verify", flag, "--key", pub, str(ref))
        assert quiet.stderr == "" and json.loads(quiet.stdout) == arr, flag
    # cobra booleans: a bare --offline or --insecure-ignore-tlog never takes REF as its value
    bare = ours(env, tmp_path, "verify", "--key", pub, "--insecure-ignore-tlog", "--offline", str(ref))
    assert json.loads(bare.stdout) == arr


def test_local_image_save_load_both_ways(peers, tmp_path, env, keypair, pushed):
    ref, digest, pub = _signed_twice(peers, tmp_path, env, keypair, pushed)
    (tmp_path / "sbom.json").write_text(json.dumps(SPDX))
    ours(env, tmp_path, "attest", "--key", keypair[0], "--type", "spdxjson", "--predicate", "sbom.json", str(ref))

    # cosign save -> our verify --local-image, same output as cosign's; our load -> cosign verify
    cosign(peers, env, tmp_path, "save", HTTP, "--dir", tmp_path / "theirs", str(ref))
    theirs = cosign(peers, env, tmp_path, "verify", "--local-image", "--key", pub, TLOG, tmp_path / "theirs")
    mine = ours(env, tmp_path, "verify", "--local-image", "--key", pub, tmp_path / "theirs")
    assert mine.stdout == theirs.stdout
    moved = f"{ref.registry}/dl-cosign-cli/{uuid.uuid4().hex[:10]}:loaded"
    ours(env, tmp_path, "load", "--dir", tmp_path / "theirs", moved)
    cosign(peers, env, tmp_path, "verify", "--key", pub, TLOG, HTTP, moved)
    cosign(peers, env, tmp_path, "verify-attestation", "--key", pub, TLOG, HTTP, "--type", "spdxjson", moved)

    # our save -> cosign verify --local-image and cosign load
    ours(env, tmp_path, "save", "--dir", tmp_path / "mine", str(ref))
    again = cosign(peers, env, tmp_path, "verify", "--local-image", "--key", pub, TLOG, tmp_path / "mine")
    assert again.stdout == theirs.stdout
    cosign(peers, env, tmp_path, "verify-attestation", "--local-image", "--key", pub, TLOG, "--type", "spdxjson",
           tmp_path / "mine")
    moved2 = f"{ref.registry}/dl-cosign-cli/{uuid.uuid4().hex[:10]}:by-cosign"
    cosign(peers, env, tmp_path, "load", HTTP, "--dir", tmp_path / "mine", moved2)
    assert ours(env, tmp_path, "verify", "--key", pub, moved2).stdout == theirs.stdout


def test_copy_tree_triangulate_download_match_cosign(peers, tmp_path, env, keypair, pushed):
    ref, digest, pub = _signed_twice(peers, tmp_path, env, keypair, pushed)
    (tmp_path / "sbom.json").write_text(json.dumps(SPDX))
    cosign(peers, env, tmp_path, "attest", "--yes", "--key", keypair[0], "--tlog-upload=false", HTTP,
           "--type", "spdxjson", "--predicate", "sbom.json", str(ref))
    cosign(peers, env, tmp_path, "attach", "sbom", HTTP, "--sbom", "sbom.json", "--type", "spdx", str(ref))
    dst = f"{ref.registry}/dl-cosign-cli/{uuid.uuid4().hex[:10]}:copied"
    out = ours(env, tmp_path, "copy", str(ref), dst)
    assert out.stdout.strip() == f"{parse_reference(dst).name}@{digest}"
    cosign(peers, env, tmp_path, "verify", "--key", pub, TLOG, HTTP, dst)
    for args in (["tree"], ["triangulate"], ["triangulate", "--type", "attestation"],
                 ["triangulate", "--type", "sbom"], ["download", "signature"], ["download", "attestation"],
                 ["download", "attestation", "--predicate-type", "spdxjson"], ["download", "sbom"]):
        for target in (str(ref), dst):
            theirs = cosign(peers, env, tmp_path, *args, HTTP, target)
            mine = ours(env, tmp_path, *args, target)
            if args == ["tree"]:  # cosign walks a Go map: its sections come in any order
                assert _tree_sections(mine.stdout) == _tree_sections(theirs.stdout), target
            else:
                assert mine.stdout == theirs.stdout, (args, target)
    # --only copies attachments and not the image
    sig_only = f"{ref.registry}/dl-cosign-cli/{uuid.uuid4().hex[:10]}"
    ours(env, tmp_path, "copy", "--only=sig", str(ref), f"{sig_only}:x")
    tree = ours(env, tmp_path, "tree", f"{ref.name}@{digest}").stdout
    assert "Signatures" in tree and "Attestations" in tree
    missing = ours(env, tmp_path, "verify", "--key", pub, f"{sig_only}:x", check=False)
    assert_clean_failure(missing, "x")
    none = ours(env, tmp_path, "download", "sbom", f"{sig_only}:x", check=False)
    assert_clean_failure(none, "x")


def test_blob_signatures_cross_both_ways(peers, tmp_path, env, keypair):
    key, pub = keypair
    blob = tmp_path / "artifact.bin"
    blob.write_bytes(uuid.uuid4().bytes * 100)
    # ours -> cosign, stdout and file forms
    sig = ours(env, tmp_path, "sign-blob", "--key", key, "--tlog-upload=false", blob).stdout
    base64.b64decode(sig.strip(), validate=True)
    (tmp_path / "ours.sig").write_text(sig)
    cosign(peers, env, tmp_path, "verify-blob", "--key", pub, "--signature", tmp_path / "ours.sig", TLOG, blob)
    ours(env, tmp_path, "sign-blob", "--key", key, "--output-signature", tmp_path / "file.sig", blob)
    cosign(peers, env, tmp_path, "verify-blob", "--key", pub, "--signature", tmp_path / "file.sig", TLOG, blob)
    # cosign -> ours, as file and as base64 text; a changed blob fails both
    cosign(peers, env, tmp_path, "sign-blob", "--yes", "--key", key, "--tlog-upload=false",
           "--output-signature", tmp_path / "theirs.sig", blob)
    ok = ours(env, tmp_path, "verify-blob", "--key", pub, "--signature", tmp_path / "theirs.sig", blob)
    assert ok.stderr.strip() == "Verified OK"
    ours(env, tmp_path, "verify-blob", "--key", pub, "--signature", (tmp_path / "theirs.sig").read_text(), blob)
    blob.write_bytes(blob.read_bytes() + b"!")
    bad = ours(env, tmp_path, "verify-blob", "--key", pub, "--signature", tmp_path / "theirs.sig", blob, check=False)
    assert_clean_failure(bad, str(blob), "does not verify")
    assert cosign(peers, env, tmp_path, "verify-blob", "--key", pub, "--signature", tmp_path / "ours.sig",
                  TLOG, blob, check=False).returncode != 0
    # public-key: the same PEM as cosign derives
    assert ours(env, tmp_path, "public-key", "--key", key).stdout == \
        cosign(peers, env, tmp_path, "public-key", "--key", key).stdout == pub.read_text()


def test_attest_statement_file(peers, tmp_path, env, keypair, pushed):
    key, pub = keypair
    ref, digest = pushed
    st = {"_type": "https://in-toto.io/Statement/v1",
          "subject": [{"name": ref.name, "digest": {"sha256": digest.split(":")[1]}}],
          "predicateType": "https://slsa.dev/provenance/v1", "predicate": {"buildDefinition": {"buildType": "x"}}}
    (tmp_path / "st.json").write_text(json.dumps(st))
    out = ours(env, tmp_path, "attest", "--key", key, "--statement", "st.json", str(ref))
    assert "https://slsa.dev/provenance/v1" in out.stdout
    theirs = cosign(peers, env, tmp_path, "verify-attestation", "--key", pub, TLOG, HTTP,
                    "--type", "slsaprovenance1", str(ref))
    signed = json.loads(base64.b64decode(json.loads(theirs.stdout.splitlines()[0])["payload"]))
    assert signed == st  # signed as given, not re-wrapped
    st["subject"][0]["digest"]["sha256"] = "0" * 64
    (tmp_path / "other.json").write_text(json.dumps(st))
    bad = ours(env, tmp_path, "attest", "--key", key, "--statement", "other.json", str(ref), check=False)
    assert_clean_failure(bad, "subjects do not include", digest)
    both = ours(env, tmp_path, "attest", "--key", key, "--statement", "st.json", "--predicate", "st.json",
                str(ref), check=False)
    assert_clean_failure(both, "exactly one of --predicate")


def test_key_and_signature_forms_from_cosign_examples(peers, tmp_path, env, keypair, pushed):
    """`--key https://…`, `--key env://VAR`, `--signature https://…`, several images at once
    (examples in cosign 2.5's own `--help`); key stores are refused by name."""
    from httpserver import StaticServer

    key, pub = keypair
    ref, digest = pushed
    ours(env, tmp_path, "sign", "--key", key, str(ref))
    other = f"{ref.name}@{digest}"
    (tmp_path / "cosign.pub").write_bytes(pub.read_bytes())  # what the web server offers
    blob = tmp_path / "msg"
    blob.write_text("hello\n")
    (tmp_path / "msg.sig").write_text(ours(env, tmp_path, "sign-blob", "--key", key, blob).stdout)
    server = StaticServer(tmp_path).start()
    try:
        both = ours(env, tmp_path, "verify", "--key", f"{server.url}/cosign.pub", str(ref), other)
        arrays = [json.loads(l) for l in both.stdout.split("\n") if l.strip()]
        assert len(arrays) == 2 and both.stderr.count("Verification for") == 2
        ours(env, tmp_path, "verify-blob", "--key", f"{server.url}/cosign.pub",
             "--signature", f"{server.url}/msg.sig", blob)
        missing = ours(env, tmp_path, "verify", "--key", f"{server.url}/nope.pub", str(ref), check=False)
        assert_clean_failure(missing, f"{server.url}/nope.pub", "404")
    finally:
        server.stop()
    envd = dict(env, DL_PUB=pub.read_text(), DL_KEY=key.read_text())
    ours(envd, tmp_path, "verify", "--key", "env://DL_PUB", str(ref))
    assert ours(envd, tmp_path, "public-key", "--key", "env://DL_KEY").stdout == pub.read_text()
    kms = ours(env, tmp_path, "verify", "--key", "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k",
               str(ref), check=False)
    assert_clean_failure(kms, "key management services are not supported")
