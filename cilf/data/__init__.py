"""Datasets (every official layout via ``open_dataset``), protocols, SynthAge, robust image loading."""
from .datasets import ManifestDataset, ManifestError, RecordDataset, SynthAge, collate_skip, read_manifest
from .images import BadImageError, SkipLog, load_image
from .open import default_root, open_dataset
from .protocols import AnnotationError, Fold
from .sources import PAPER_DATASETS, SOURCES, AgeDataset, DatasetNotFound, get_source
from .synthage import SynthAgeSpec, caption, generate, render_face, sample_subject

__all__ = ["ManifestDataset", "ManifestError", "RecordDataset", "SynthAge", "collate_skip", "read_manifest",
           "BadImageError", "SkipLog", "load_image", "default_root", "open_dataset", "AnnotationError", "Fold",
           "PAPER_DATASETS", "SOURCES", "AgeDataset", "DatasetNotFound", "get_source", "SynthAgeSpec", "caption",
           "generate", "render_face", "sample_subject"]
