"""Inference: feature extraction, gallery search, export and fast CPU paths.

Heavy optional packages (faiss, onnx, onnxruntime, openvino) are imported only where used.
"""

from omnireid.inference.extract import extract_features
from omnireid.inference.extractor import ExtractResult, FeatureExtractor, l2_normalize
from omnireid.inference.fuse import fold_batchnorm, optimize_for_inference
from omnireid.inference.preprocess import open_rgb, preprocess

__all__ = [
    "ExtractResult", "FeatureExtractor", "extract_features", "fold_batchnorm", "l2_normalize",
    "open_rgb", "optimize_for_inference", "preprocess",
]
