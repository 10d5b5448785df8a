"""Link budget per contact: data rates and latency, and how long a transfer takes.

A deliberately small model. Each direction has a nominal rate reached at the reference slant range;
with adaptive coding and modulation the achievable rate follows the received power, which falls with
the square of the range, so a low pass (long range) gets a lower rate:

    rate = nominal · clip((reference_range / min_range)², floor, 1)

Latency = slant range / c (at the pass's closest approach) + a fixed ground-segment overhead.
"ground_to_sat" is the telecommand uplink (global model down to the satellite), "sat_to_ground" the
payload downlink (the satellite's update to the aggregator).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgefl.errors import EdgeflError
from edgefl.sim.orbit import C_KM_S, ContactWindow


@dataclass(frozen=True)
class LinkModel:
    """Nominal link figures for every contact.

    Args:
        ground_to_sat_bps: uplink rate at the reference range (S-band TT&C class: 256 kbit/s).
        sat_to_ground_bps: downlink rate at the reference range (smallsat S/X-band: 2 Mbit/s).
        reference_range_km: range at which the nominal rates hold (close to zenith at 550 km).
        floor: lowest fraction of the nominal rate (at long range).
        overhead_s: fixed ground-segment latency added to propagation.
    """

    ground_to_sat_bps: float = 256_000.0
    sat_to_ground_bps: float = 2_000_000.0
    reference_range_km: float = 600.0
    floor: float = 0.25
    overhead_s: float = 0.05

    def __post_init__(self) -> None:
        if self.ground_to_sat_bps <= 0 or self.sat_to_ground_bps <= 0:
            raise EdgeflError("link rates must be positive bits per second — e.g. 256000 up, 2000000 down")
        if not 0.0 < self.floor <= 1.0:
            raise EdgeflError("link floor must be in (0, 1] — it is the lowest fraction of the nominal rate")


@dataclass(frozen=True)
class Link:
    """Figures of one contact."""

    ground_to_sat_bps: float
    sat_to_ground_bps: float
    latency_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def link_for_window(window: ContactWindow, model: LinkModel) -> Link:
    """Rates and latency of one pass from its closest approach."""
    factor = min(1.0, max(model.floor, (model.reference_range_km / window.min_range_km) ** 2))
    return Link(
        ground_to_sat_bps=model.ground_to_sat_bps * factor,
        sat_to_ground_bps=model.sat_to_ground_bps * factor,
        latency_s=window.min_range_km / C_KM_S + model.overhead_s,
    )


def transfer_s(nbytes: int, bps: float, latency_s: float) -> float:
    """Simulated seconds to move nbytes over a link (serialisation + one-way latency)."""
    if nbytes < 0:
        raise EdgeflError("a transfer cannot have a negative size")
    return 8.0 * nbytes / bps + latency_s
