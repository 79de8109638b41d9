"""Datasets (every official layout via ``open_dataset``), protocols, SynthAge, robust image loading."""

from .datasets import (
    ManifestDataset,
    ManifestError,
    RecordDataset,
    SynthAge,
    collate_skip,
    manifest_leakage,
    read_manifest,
)
from .images import BadImageError, ImageWalk, NoImagesFound, SkipLog, load_image, walk_images
from .open import default_root, open_dataset
from .protocols import AnnotationError, Fold, find_fold
from .sources import PAPER_DATASETS, SOURCES, AgeDataset, DatasetNotFound, get_source
from .split_warnings import leakage_lines, leakage_report
from .synthage import SynthAgeSpec, caption, generate, render_face, sample_subject

__all__ = [
    "ManifestDataset",
    "ManifestError",
    "RecordDataset",
    "SynthAge",
    "collate_skip",
    "manifest_leakage",
    "read_manifest",
    "BadImageError",
    "ImageWalk",
    "NoImagesFound",
    "SkipLog",
    "load_image",
    "walk_images",
    "default_root",
    "open_dataset",
    "AnnotationError",
    "Fold",
    "find_fold",
    "leakage_lines",
    "leakage_report",
    "PAPER_DATASETS",
    "SOURCES",
    "AgeDataset",
    "DatasetNotFound",
    "get_source",
    "SynthAgeSpec",
    "caption",
    "generate",
    "render_face",
    "sample_subject",
]
