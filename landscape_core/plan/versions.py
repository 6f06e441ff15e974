"""The package versions that decide a point's numbers, recorded with every point.

A point's key names what it computes, not the library that computed it, so a run
resumed after an upgrade would mix points of two torch or transformers versions
(their kernels and generation code change greedy answers). Each point stores the
versions it was computed under; a resume that finds others asks what to do
(``RuntimeSpec.on_new_versions``). Read from the packages' metadata: nothing is
imported, so the pages may ask too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version

DECIDING = ("torch", "transformers")  # a difference here stops a resume
RECORDED = (*DECIDING, "peft")  # stored with every point (with the tool's own version)
CHOICES = {
    "recompute": "--recompute: compute those points again under the installed versions",
    "accept": "--accept-versions: keep them, and the run's provenance records mixed versions",
}


def installed() -> dict[str, str]:
    """The recorded packages' installed versions; one not installed is left out."""
    found = {}
    for name in RECORDED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def deciding(versions: Mapping[str, str]) -> dict[str, str]:
    """The part of ``versions`` that decides a result (a missing package reads '-')."""
    return {name: str(versions.get(name, "-")) for name in DECIDING}


def differs(stored: Mapping[str, str], current: Mapping[str, str]) -> bool:
    return deciding(stored) != deciding(current)


def describe(versions: Mapping[str, str]) -> str:
    """``torch 2.5.1, transformers 4.46.0``."""
    return ", ".join(f"{name} {v}" for name, v in deciding(versions).items())


def distinct(sets: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """The different deciding-version sets among ``sets``, in a stable order."""
    unique = {tuple(deciding(s).items()) for s in sets}
    return [dict(items) for items in sorted(unique)]


def conflict_message(
    run_id: str, n_points: int, stored: list[dict[str, str]], now: Mapping[str, str]
) -> str:
    """The UserError a resume stops with: which versions differ, and the two choices."""
    before = "; ".join(describe(s) for s in stored)
    return (
        f"run {run_id} holds {n_points} point(s) computed under {before}, but this process "
        f"has {describe(now)}: resuming would mix results of different versions. Choose: "
        f"{CHOICES['recompute']}; or {CHOICES['accept']} (the app's Jobs and Launch pages "
        "offer the same two)"
    )
