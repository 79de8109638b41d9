"""cilf: reference implementation of CILF-CIAE (CLIP-driven image-language fusion for
correcting inverse age estimation, Shou et al., arXiv 2312.01758)."""
from .model.config import CILFConfig, default_config
from .model.cilf_model import CILF, CILFOutput, create_model

__all__ = ["CILFConfig", "CILF", "CILFOutput", "FaceRow", "create_model", "default_config", "predict"]


def __getattr__(name: str):
    """``cilf.predict`` / ``cilf.FaceRow`` (faces in photos -> ages), imported on first use."""
    if name in ("predict", "FaceRow"):
        from .run import predict as _predict

        return getattr(_predict, name)
    raise AttributeError(f"module 'cilf' has no attribute {name!r}")
__version__ = "0.1.0"
