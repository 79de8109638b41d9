"""Dataset sources: one class per official layout, found by name through :data:`SOURCES`."""

from __future__ import annotations

from .adience import Adience
from .agedb import AgeDB
from .appa_real import AppaReal
from .base import AgeDataset, DatasetNotFound, Scan, Source
from .cacd import CACD
from .fgnet import FGNet
from .generic import Manifest, SynthAgeSource
from .imdb_wiki import ImdbWiki
from .morph import MorphII
from .per_subject import FACES, SCface
from .utkface import UTKFace

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        MorphII(),
        FGNet(),
        CACD(),
        Adience(),
        FACES(),
        SCface(),
        UTKFace(),
        AppaReal(),
        AgeDB(),
        ImdbWiki(),
        Manifest(),
        SynthAgeSource(),
    )
}
PAPER_DATASETS = ("morph2", "fgnet", "cacd", "adience", "faces", "scface")  # the paper's six benchmarks


def get_source(name: str) -> Source:
    """The source registered under ``name`` or one of its aliases (case-insensitive)."""
    key = name.strip().lower()
    for s in SOURCES.values():
        if key == s.name or key in s.aliases:
            return s
    raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(SOURCES)}")


__all__ = ["AgeDataset", "DatasetNotFound", "PAPER_DATASETS", "SOURCES", "Scan", "Source", "get_source"]
