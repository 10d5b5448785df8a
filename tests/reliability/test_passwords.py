"""Password files in Mosquitto 2.x's own format: lines we write verify like the ones
``mosquitto_passwd -b`` writes, and the other way round."""

import subprocess

import pytest

from edgefl.security.passwords import check_password_line, password_file_text, password_line


def test_line_format_and_check():
    line = password_line("sat-1", "s3cret", salt=b"\x00" * 12)
    user, rest = line.split(":", 1)
    assert user == "sat-1" and rest.startswith("$7$101$AAAAAAAAAAAAAAAA$")
    assert check_password_line(line, "sat-1", "s3cret")
    assert not check_password_line(line, "sat-1", "guess")
    assert not check_password_line(line, "sat-2", "s3cret")
    with pytest.raises(ValueError):
        password_line("a:b", "x")


def test_compatible_with_mosquitto_passwd(tmp_path, tool):
    passwd = tool("mosquitto_passwd", "mosquitto_passwd (apt-get install mosquitto)")
    path = tmp_path / "passwd"
    subprocess.run([passwd, "-c", "-b", str(path), "sat-1", "s3cret"], check=True)
    theirs = path.read_text().strip()
    assert check_password_line(theirs, "sat-1", "s3cret")
    assert theirs.split("$")[1:3] == password_line("sat-1", "x").split("$")[1:3]  # same scheme, iterations


def test_file_is_sorted_one_line_per_user():
    text = password_file_text({"b": "1", "a": "2"})
    assert [line.split(":")[0] for line in text.splitlines()] == ["a", "b"]
