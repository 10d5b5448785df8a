"""Usage errors through the installed console script: one line on stderr, exit 2, never a traceback."""

import pytest


@pytest.mark.parametrize("argv,needle", [
    (["compress", "stad"], "--scenes"),
    (["export"], "CHECKPOINT"),
    (["train", "--epochs", "x"], "--epochs"),
    (["agent", "--bogus"], "--bogus"),
])
def test_usage_error_is_one_line_exit_2(edgefl, argv, needle):
    code, out, err = edgefl(*argv)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert needle in err and " — " in err  # the problem, then the fix


def test_version(edgefl):
    from edgefl import __version__

    code, out, err = edgefl("--version")
    assert code == 0 and out.strip() == f"edgefl {__version__}" and not err


def test_a_group_without_its_command_shows_its_help(edgefl):
    code, out, err = edgefl("compress")
    assert code == 2 and "Usage: edgefl compress" in out and "ghost" in out and "Traceback" not in err
