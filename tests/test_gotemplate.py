"""The Go text/template subset of `show-packages --format`: outputs as Go's text/template gives them."""

from __future__ import annotations

import pytest

from distroless.cli.gotemplate import TemplateError, render

DATA = {"Name": "busybox", "Version": "1.36.1-r0", "Source": "https://r.example/x86_64/busybox-1.36.1-r0.apk"}


@pytest.mark.parametrize("template,want", [
    ("{{ .Name }} {{ .Version }}", "busybox 1.36.1-r0"),
    ("{{.Name}}={{.Version}}", "busybox=1.36.1-r0"),
    ('{{if eq .Name "busybox"}}shell{{else}}other{{end}}', "shell"),
    ('{{if eq .Name "a" "b" "busybox"}}any{{end}}', "any"),
    ('{{if ne .Name "busybox"}}x{{else if eq .Version "1.36.1-r0"}}pinned{{else}}y{{end}}', "pinned"),
    ("{{with .Source}}<{{.}}>{{end}}", "<https://r.example/x86_64/busybox-1.36.1-r0.apk>"),
    ('{{with ""}}never{{else}}empty{{end}}', "empty"),
    ("a  {{- .Name -}}  b", "abusyboxb"),
    ("{{/* a comment */}}{{.Name}}", "busybox"),
    ('{{printf "%s@%s %q %d%%" .Name .Version .Name 7}}', 'busybox@1.36.1-r0 "busybox" 7%'),
    ('{{.Name | printf "[%s]"}}', "[busybox]"),
    ("{{len .Name}}", "7"),
    ('{{if and (ne .Name "") (not false)}}ok{{end}}', "ok"),
    ('{{if or false ""}}t{{else}}f{{end}}', "f"),
    ('{{print .Name "-" .Version}}', "busybox-1.36.1-r0"),
    ("{ not an action } {{.Name}}", "{ not an action } busybox"),
])
def test_renders_as_go(template: str, want: str) -> None:
    assert render(template, DATA) == want


@pytest.mark.parametrize("template,needle", [
    ("{{range .Deps}}x{{end}}", "{{range}} is not supported"),
    ("{{if .Name}}x", "missing {{end}}"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{.Nope}}", "can't evaluate field Nope"),
    ("{{nosuch .Name}}", 'function "nosuch" not defined'),
    ("{{.Name}", "unclosed action"),
    ("{{ .Name | }}", "pipeline stage"),
    ("{{ .Name @ }}", "unsupported template syntax"),
])
def test_unsupported_is_a_located_error(template: str, needle: str) -> None:
    with pytest.raises(TemplateError) as e:
        render(template, DATA)
    assert needle in str(e.value) and template in str(e.value)
