"""cilf: reference implementation of CILF-CIAE (CLIP-driven image-language fusion for
correcting inverse age estimation, Shou et al., arXiv 2312.01758)."""
from .model.config import CILFConfig, default_config
from .model.cilf_model import CILF, CILFOutput, create_model

__all__ = ["CILFConfig", "CILF", "CILFOutput", "create_model", "default_config"]
__version__ = "0.1.0"
