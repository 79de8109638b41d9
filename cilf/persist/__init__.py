"""Persistence: CLIP weights (bundled, tags, files), named model configs and the factory, checkpoints.
May import cilf.model and the base modules (cilf.io, cilf.utils); nothing above."""
