"""The OSNet family, ResNet baselines, weights and complexity."""

from omnireid.models.arch import AIN_BLOCKS, IBN_BLOCKS, OSNetArch, make_arch
from omnireid.models.complexity import Complexity, model_complexity
from omnireid.models.factory import MODELS, create_model, list_models
from omnireid.models.layers import INPosition, OSBlock
from omnireid.models.osnet import OSNet
from omnireid.models.output import ReIDOutput
from omnireid.models.weights import load_weights, save_weights

__all__ = [
    "AIN_BLOCKS", "IBN_BLOCKS", "MODELS", "Complexity", "INPosition", "OSBlock", "OSNet",
    "OSNetArch", "ReIDOutput", "create_model", "list_models", "load_weights", "make_arch",
    "model_complexity", "save_weights",
]
