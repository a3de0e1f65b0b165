"""The quoting filters, checked against the real /bin/sh and Dockerfile rules."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlpack.dockerfile.quoting import dockerfile_value, json_array, shell_quote
from mlpack.errors import RenderError
from tests.unit.dockerfile.dfparse import key_values


def hostile(marker: Path) -> list[str]:
    return [
        f"foo$(touch {marker})",
        f"foo`touch {marker}`",
        f"foo; touch {marker}",
        f"foo' ; touch {marker}; echo '",
        f'foo" ; touch {marker}; echo "',
        f"foo\\' ; touch {marker} #",
        f"foo\\$(touch {marker})",
        "back\\slash\\",
        "${HOME} $PATH ${X:-y}",
        "",
        "-rf",
        "ünïcode ✓",
    ]


def test_shell_quote_reads_back_verbatim_in_sh(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for value in hostile(marker):
        quoted = shell_quote(value)
        result = subprocess.run(["sh", "-c", f"printf '%s' {quoted}"], capture_output=True, check=True)
        assert result.stdout.decode() == value
        assert not marker.exists(), f"{value!r} ran a command"


@pytest.mark.parametrize("value", ["a\nRUN touch /tmp/pwned", "a\rb", "tab\there", "nul\x00", "ls\u2028x"])
def test_control_characters_are_refused(value: str) -> None:
    for fn in (shell_quote, dockerfile_value):
        with pytest.raises(RenderError, match="control character"):
            fn(value)
    with pytest.raises(RenderError):
        json_array(["ok", value])


def test_dockerfile_value_unquotes_to_the_original(tmp_path: Path) -> None:
    for value in hostile(tmp_path / "pwned"):
        rendered = dockerfile_value(value)
        assert rendered.startswith('"') and rendered.endswith('"')
        assert key_values(f"K={rendered}") == {"K": value}


def test_dockerfile_value_matches_the_builders_expander(tmp_path: Path) -> None:
    shell = pytest.importorskip("mlpack.builder.shell")
    expander = shell.Expander({"HOME": "/root", "PATH": "/bin", "X": "x"})
    for value in hostile(tmp_path / "pwned"):
        assert expander.word(dockerfile_value(value)) == value


def test_json_array_is_one_line_of_json() -> None:
    text = json_array(["/opt/venv/bin/python", "-c", "print('a \"b\" \\\\ $x')"])
    assert "\n" not in text
    assert json.loads(text) == ["/opt/venv/bin/python", "-c", "print('a \"b\" \\\\ $x')"]
    with pytest.raises(RenderError):
        json_array("not a list")


def test_non_text_values_are_refused() -> None:
    with pytest.raises(RenderError):
        shell_quote(None)
    with pytest.raises(RenderError):
        dockerfile_value(["a"])
