"""The CILF-CIAE model (the library): config, CLIP encoders, pixel-text similarity, FourierFormer,
context fusion, age head, losses, correcting inverse age estimation, checkpoints."""
from .checkpoint import load_model, save_checkpoint
from .cilf_model import CILF, CILFOutput, create_model
from .config import CILFConfig, default_config

__all__ = ["CILF", "CILFConfig", "CILFOutput", "create_model", "default_config", "load_model", "save_checkpoint"]
