"""`edgefl aggregate --downlink-codec/--downlink-option` through the console script: a bad codec
or option is one line naming it, exit 2, before anything connects."""

from pathlib import Path

import pytest

BUNDLE = Path(__file__).resolve().parents[1] / "runtime" / "data" / "tiny_bundle"


@pytest.mark.parametrize("extra,needle", [
    (["--downlink-codec", "zip"], "unknown downlink codec 'zip'"),
    (["--downlink-codec", "topk", "--downlink-option", "k=3"], "downlink: bad options for codec 'topk'"),
])
def test_bad_downlink_codec_is_one_line_exit_2(edgefl, extra, needle):
    code, out, err = edgefl("aggregate", "--model", BUNDLE, "--port", "1", "--timeout", "5", *extra)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert needle in err
