"""The CILF-CIAE architecture: config, CLIP towers, pixel-text similarity, FourierFormer, context fusion, age
head, losses, correcting inverse age estimation. May import the base modules (cilf.io, cilf.utils) only."""

from cilf.model.cilf_model import CILF, CILFOutput
from cilf.model.config import CILFConfig, default_config

__all__ = ["CILF", "CILFConfig", "CILFOutput", "default_config"]
