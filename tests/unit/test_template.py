"""--format templates: expected values are what docker (Go text/template + docker's
functions) prints for the same template and data."""

from __future__ import annotations

from typing import Any

import pytest

from cargohold.cli.template import render, render_rows, table_format, tabwrite
from cargohold.errors import InvalidArgument

IMAGE: dict[str, Any] = {
    "Id": "sha256:5d0da3dc976460b72c77d94c8a1ad043720b0416bfc16c52c45d4847e53fadb6",
    "RepoTags": ["centos:7", "centos:latest"],
    "RepoDigests": [],
    "Parent": "",
    "Size": 204_203_696,
    "Config": {
        "Cmd": ["/bin/bash"],
        "Entrypoint": None,
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Labels": {"org.label-schema.name": "CentOS Base Image", "a": "1"},
        "ExposedPorts": {"80/tcp": {}},
        "Volumes": None,
    },
    "NetworkSettings": {
        "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": None},
    },
}

CASES = [
    ("{{.Id}}", IMAGE["Id"]),
    ("{{.Config.Cmd}}", "[/bin/bash]"),
    ("{{.RepoTags}}", "[centos:7 centos:latest]"),
    ("{{.RepoDigests}}", "[]"),
    ("{{.Config.Entrypoint}}", "<nil>"),
    ("{{.NoSuchField}}", "<no value>"),
    ("{{.Config.NoSuch.Deeper}}", "<no value>"),
    ("{{.Size}}", "204203696"),
    ("{{.Config.Labels}}", "map[a:1 org.label-schema.name:CentOS Base Image]"),
    ("{{.Config.ExposedPorts}}", "map[80/tcp:map[]]"),
    ("{{json .Config.Cmd}}", '["/bin/bash"]'),
    ("{{json .Config.Volumes}}", "null"),
    ("{{.Config.Cmd | json}}", '["/bin/bash"]'),
    ("{{json .NoSuch}}", "null"),
    ('{{json "a<b&c"}}', '"a<b&c"'),  # docker turns HTML escaping off
    ('{{index .Config.Labels "org.label-schema.name"}}', "CentOS Base Image"),
    ('[{{index .Config.Labels "missing"}}]', "[]"),  # map[string]string zero value
    ('{{index .NetworkSettings.Ports "80/tcp"}}', "[map[HostIp:0.0.0.0 HostPort:8080]]"),
    ('{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}', "8080"),
    ("{{index .RepoTags 1}}", "centos:latest"),
    ("{{range .RepoTags}}{{.}} {{end}}", "centos:7 centos:latest "),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
     "a=1;org.label-schema.name=CentOS Base Image;"),
    ("{{range $i, $t := .RepoTags}}{{$i}}:{{$t}} {{end}}", "0:centos:7 1:centos:latest "),
    ("{{range $p, $b := .NetworkSettings.Ports}}{{$p}} {{end}}", "443/tcp 80/tcp "),
    ("{{range .RepoDigests}}x{{else}}none{{end}}", "none"),
    ("{{range .Config.Volumes}}x{{end}}.", "."),
    ("{{range .RepoTags}}{{if eq . \"centos:latest\"}}{{break}}{{end}}{{.}}{{end}}",
     "centos:7"),
    ("{{range .RepoTags}}{{if eq . \"centos:7\"}}{{continue}}{{end}}{{.}}{{end}}",
     "centos:latest"),
    ("{{if .Config.Entrypoint}}ep{{else}}no ep{{end}}", "no ep"),
    ("{{if .RepoDigests}}d{{else if .RepoTags}}t{{else}}none{{end}}", "t"),
    ("{{if and .RepoTags (not .Parent)}}base{{end}}", "base"),
    ("{{or .Parent \"none\"}}", "none"),
    ("{{with .Config}}{{.Cmd}}{{end}}", "[/bin/bash]"),
    ("{{with .Config.Entrypoint}}{{.}}{{else}}unset{{end}}", "unset"),
    ("{{println}}", "\n"),
    ("{{println .Size \"x\"}}", "204203696 x\n"),
    ("{{print 1 2 \"a\" 3}}", "1 2a3"),
    ('{{join .RepoTags ","}}', "centos:7,centos:latest"),
    ('{{join (split "a:b:c" ":") "-"}}', "a-b-c"),
    ('{{lower "ABC"}} {{upper "abc"}} {{title "hello wide-world"}}', "abc ABC Hello Wide-World"),
    ('{{pad "x" 1 2}}|{{truncate "abcdef" 3}}', " x  |abc"),
    ("{{len .RepoTags}} {{len .Config.Labels}} {{len \"héllo\"}}", "2 2 6"),
    ('{{printf "%s has %d tags" .Parent (len .RepoTags)}}', " has 2 tags"),
    ('{{printf "%-8s|%5d|%05.1f|%x|%q|%v|%t" "ab" 42 3.14159 255 "q" .RepoTags true}}',
     'ab      |   42|003.1|ff|"q"|[centos:7 centos:latest]|true'),
    ('{{printf "%d"}}', "%!d(MISSING)"),
    ('{{printf "%d" "x"}}', "%!d(string=x)"),
    ('{{printf "%s" 1 2}}', "%!s(int=1)%!(EXTRA int=2)"),
    ('{{printf "%%"}}', "%"),
    ("{{.Id | printf \"%.19s\"}}", "sha256:5d0da3dc9764"),
    ("a   {{- .Parent -}}   b", "ab"),
    ("a\n  {{- /* comment */ -}}\n  b", "ab"),
    ("{{$id := .Id}}{{$id}}", IMAGE["Id"]),
    ("{{$n := 1}}{{range .RepoTags}}{{$n = 2}}{{end}}{{$n}}", "2"),
    ("{{$.Size}}{{range .RepoTags}}{{$.Parent}}{{end}}", "204203696"),
    ('{{"a\\tb"}}{{`raw\\t`}}', "a\tbraw\\t"),
    ("{{-3}} {{ 1.5 }} {{ 1e6 }} {{ 0x10 }} {{ true }}", "-3 1.5 1e+06 16 true"),
    ("{{if eq .Size 204203696}}big{{end}}", "big"),
    ("{{if ne .Parent \"\"}}child{{else}}root{{end}}", "root"),
    ("{{if lt 1 2}}{{if ge 2 2}}{{if gt 3.5 3}}ok{{end}}{{end}}{{end}}", "ok"),
    ("{{html \"<a href='x'>\"}}", "&lt;a href=&#39;x&#39;&gt;"),
    ('{{urlquery "a b&c"}}', "a+b%26c"),
    ('{{slice "abcdef" 1 3}} {{slice .RepoTags 1}}', "bc [centos:latest]"),
]


@pytest.mark.parametrize(("template", "expected"), CASES)
def test_render(template: str, expected: str) -> None:
    assert render(template, IMAGE) == expected


def test_render_attribute_of_objects() -> None:
    class Row:
        ID = "abc"

    assert render("{{.ID}}", Row()) == "abc"


ERRORS = [
    ("{{.Id", "template parsing error: template: :1: unclosed action"),
    ("x\n{{nosuch .Id}}", 'template parsing error: template: :2: function "nosuch" not defined'),
    ("{{end}}", "template parsing error: template: :1: unexpected {{end}}"),
    ("{{if .Id}}x", "template parsing error: template: :1: unexpected EOF"),
    ("{{range}}{{end}}", "template parsing error: template: :1: missing value for range"),
    ("{{break}}", "template parsing error: template: :1: {{break}} outside {{range}}"),
    ('{{template "x"}}', "template parsing error: template: :1: {{template}} is not supported "
     "in --format"),
    ("{{.Config.Entrypoint.X}}", 'template parsing error: template: :1: executing "" at '
     "<.Config.Entrypoint.X>: nil pointer evaluating interface {}.X"),
    ("{{index .RepoTags 5}}", 'template parsing error: template: :1: executing "" at '
     "<index .RepoTags 5>: error calling index: index out of range: 5"),
    ("{{len .Size}}", 'template parsing error: template: :1: executing "" at <len .Size>: '
     "error calling len: len of type int"),
    ('{{eq .Size "x"}}', 'template parsing error: template: :1: executing "" at '
     "<eq .Size \"x\">: error calling eq: incompatible types for comparison"),
    ("{{.Id 1}}", 'template parsing error: template: :1: executing "" at <.Id 1>: '
     "can't give argument to non-function .Id"),
    ("{{range .Id}}{{end}}", "range can't iterate over"),
    ("{{$x}}", "undefined variable: $x"),
    ("{{upper 1}}", "wrong type for value; expected string; got int"),
    ("{{join 1 \",\"}}", "wrong type for value; expected []string; got int"),
    ("{{lower}}", "wrong number of args for lower: want 1 got 0"),
]


@pytest.mark.parametrize(("template", "message"), ERRORS)
def test_errors(template: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        render(template, IMAGE)
    assert message in str(info.value)
    assert str(info.value).startswith("template parsing error: ")


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("table {{.ID}}\\t{{.Image}}", (True, "{{.ID}}\t{{.Image}}")),
        ("{{.ID}}\\n", (False, "{{.ID}}\n")),
        ("  {{.ID}} ", (False, "{{.ID}}")),
        ("table", (True, "")),
        ("json", (False, "{{json .}}")),
    ],
)
def test_table_format(fmt: str, expected: tuple[bool, str]) -> None:
    assert table_format(fmt) == expected


PS_ROWS = [
    {"ID": "3f4ab2c1d9e8", "Image": "nginx", "Names": "web", "Status": "Up 3 seconds"},
    {"ID": "0123456789ab", "Image": "docker.io/library/busybox:latest", "Names": "x",
     "Status": "Exited (0) 2 minutes ago"},
]
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Names": "NAMES", "Status": "STATUS"}


def test_render_rows_table_like_docker_ps() -> None:
    out = render_rows("table {{.ID}}\\t{{.Image}}\\t{{.Status}}", PS_ROWS, PS_HEADERS)
    assert out == (
        "CONTAINER ID   IMAGE                              STATUS\n"
        "3f4ab2c1d9e8   nginx                              Up 3 seconds\n"
        "0123456789ab   docker.io/library/busybox:latest   Exited (0) 2 minutes ago\n"
    )


def test_render_rows_min_width_10() -> None:
    # tabwriter min width 10: short columns still take 10 characters (docker's "NAMES     ")
    out = render_rows("table {{.Names}}\\t{{.ID}}", PS_ROWS, PS_HEADERS)
    assert out.splitlines() == [
        "NAMES     CONTAINER ID",
        "web       3f4ab2c1d9e8",
        "x         0123456789ab",
    ]


def test_render_rows_table_without_rows_prints_header() -> None:
    assert render_rows("table {{.ID}}\\t{{.Names}}", [], PS_HEADERS) == "CONTAINER ID   NAMES\n"


def test_render_rows_plain_format_has_no_header_or_padding() -> None:
    out = render_rows("{{.ID}}: {{.Names}}", PS_ROWS, PS_HEADERS)
    assert out == "3f4ab2c1d9e8: web\n0123456789ab: x\n"
    assert render_rows("{{.ID}}", [], PS_HEADERS) == ""


def test_render_rows_unknown_header_field_is_blank() -> None:
    out = render_rows("table {{.Labels}}\\t{{.ID}}", [{"Labels": "a=b", "ID": "1"}], {"ID": "ID"})
    assert out.splitlines() == ["          ID", "a=b       1"]


def test_tabwrite_column_blocks() -> None:
    # a line without tabs ends the column block: the widths restart after it
    text = "a\tbb\nccc\td\nplain\nlonger-cell\te\n"
    assert tabwrite(text, minwidth=0, padding=1) == "a   bb\nccc d\nplain\nlonger-cell e\n"
