"""cilf: reference implementation of CILF-CIAE (CLIP-driven image-language fusion for
correcting inverse age estimation, Shou et al., arXiv 2312.01758)."""

from cilf.model.cilf_model import CILF, CILFOutput
from cilf.model.config import CILFConfig, default_config
from cilf.persist.checkpoint import load_model
from cilf.persist.factory import create_model, list_models

__all__ = [
    "CILFConfig",
    "CILF",
    "CILFOutput",
    "FaceRow",
    "create_model",
    "default_config",
    "list_models",
    "load_model",
    "predict",
]


def __getattr__(name: str):
    """``cilf.predict`` / ``cilf.FaceRow`` (faces in photos -> ages), imported on first use."""
    if name in ("predict", "FaceRow"):
        from cilf.app import predict as _predict

        return getattr(_predict, name)
    raise AttributeError(f"module 'cilf' has no attribute {name!r}")


__version__ = "0.1.0"
