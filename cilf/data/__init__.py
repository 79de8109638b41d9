"""Datasets, SynthAge, robust image loading."""
from .datasets import ManifestDataset, ManifestError, SynthAge, collate_skip, read_manifest
from .images import BadImageError, SkipLog, load_image
from .synthage import SynthAgeSpec, caption, generate, render_face, sample_subject

__all__ = ["ManifestDataset", "ManifestError", "SynthAge", "collate_skip", "read_manifest", "BadImageError",
           "SkipLog", "load_image", "SynthAgeSpec", "caption", "generate", "render_face", "sample_subject"]
