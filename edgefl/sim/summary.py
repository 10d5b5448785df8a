"""What a simulation's numbers mean, in one sentence: where the federation starts and what it aims at.

The terminal summary (`edgefl simulate`, `edgefl demo`) and the report print the same sentence, built
here from the simulation document alone, so the two never disagree.
"""

from __future__ import annotations


def percent(x: float) -> str:
    return f"{100 * x:.1f} %"


def start_note(doc: dict) -> str | None:
    """The starting model's accuracy in orbit (and on the ground, under a sensor effect) and the target.

    Args:
        doc: a simulation document (``edgefl.sim.simulate.simulate``'s result, simulation.json).

    Returns:
        one sentence, or None for a document without the starting facts (written by an older edgefl).
    """
    start = doc.get("start") or {}
    if start.get("accuracy") is None:
        return None
    images = f"{start.get('test_images', 0):,} held-out images"
    if "accuracy_on_ground" in start:
        where = (f"In orbit {start['sensor_description']}: the starting model scores "
                 f"{percent(start['accuracy'])} on {images} as the satellites see them and "
                 f"{percent(start['accuracy_on_ground'])} on the same images as on the ground.")
    else:
        where = f"The starting model scores {percent(start['accuracy'])} on {images}."
    target = doc.get("target_accuracy")
    gain = (doc.get("config") or {}).get("target_gain")
    if target is None:
        return where
    if gain is not None:
        return f"{where} Target: {percent(target)} (the start + {100 * gain:g} points)."
    return f"{where} Target: {percent(target)}."
