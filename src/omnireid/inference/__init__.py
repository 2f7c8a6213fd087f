"""Inference: feature extraction, calibrated verification, galleries, track embeddings, export
and fast CPU paths.

Heavy optional packages (faiss, onnx, onnxruntime, openvino) are imported only where used.
"""

from omnireid.evaluation.distances import l2_normalize
from omnireid.inference.extractor import ExtractResult, FeatureExtractor
from omnireid.inference.fuse import fold_batchnorm, optimize_for_inference
from omnireid.inference.gallery import Gallery, GalleryError
from omnireid.inference.preprocess import open_rgb, preprocess
from omnireid.inference.tracks import BoxEmbedder, TrackBank
from omnireid.inference.verify import Calibration, Verifier, calibrate

__all__ = [
    "BoxEmbedder", "Calibration", "ExtractResult", "FeatureExtractor", "Gallery", "GalleryError",
    "TrackBank", "Verifier", "calibrate", "fold_batchnorm", "l2_normalize",
    "open_rgb", "optimize_for_inference", "preprocess",
]
