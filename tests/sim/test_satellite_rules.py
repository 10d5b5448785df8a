import pytest

from edgefl.sim.brokers import mqtt_options_from_url
from edgefl.sim.satellite import finish_time, update_still_useful
from edgefl.errors import EdgeflError


@pytest.mark.parametrize(
    "update_round, latest, mode, cap, useful",
    [
        (3, 3, "sync", 0, True),  # the open round
        (3, 4, "sync", 9, False),  # the round closed while the satellite was out of contact
        (3, 3, "async", 2, True),
        (3, 5, "async", 2, True),  # two versions stale: within the cap
        (3, 6, "async", 2, False),  # too stale
    ],
)
def test_update_usefulness(update_round, latest, mode, cap, useful):
    assert update_still_useful(update_round, latest, mode, cap) is useful


def test_transfer_must_fit_in_the_window():
    # 250 kB at 2 Mbit/s = 1 s + 0.1 s latency
    assert finish_time(100.0, 250_000, 2_000_000, 0.1, 200.0) == pytest.approx(101.1)
    assert finish_time(199.5, 250_000, 2_000_000, 0.1, 200.0) is None


def test_broker_urls():
    assert mqtt_options_from_url("mqtt://gs.example") == {"host": "gs.example", "port": 1883, "tls": False}
    assert mqtt_options_from_url("mqtts://u:p%40ss@gs:9000") == {
        "host": "gs",
        "port": 9000,
        "tls": True,
        "username": "u",
        "password": "p@ss",
    }
    with pytest.raises(EdgeflError, match="not understood"):
        mqtt_options_from_url("http://gs")
