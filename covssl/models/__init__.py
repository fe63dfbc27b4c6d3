"""Backbones (by name), projector/predictor heads, the EMA target and optimizer groups.

Importing this package fills the backbone registry through the explicit imports below.
"""

from covssl.models import convnet as convnet  # registers "small_convnet"
from covssl.models import resnet as resnet  # registers "resnet18", "resnet34", "resnet50"
from covssl.models import vit as vit  # registers "vit_tiny", "vit_small"
from covssl.models.convnet import SmallConvNet
from covssl.models.ema import EMATarget, cosine_momentum
from covssl.models.heads import Predictor, Projector
from covssl.models.param_groups import param_groups_for_weight_decay
from covssl.models.registry import create_backbone, list_backbones, register_backbone
from covssl.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from covssl.models.vit import VisionTransformer, vit_small, vit_tiny

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "EMATarget",
    "Predictor",
    "Projector",
    "ResNet",
    "SmallConvNet",
    "VisionTransformer",
    "cosine_momentum",
    "create_backbone",
    "list_backbones",
    "param_groups_for_weight_decay",
    "register_backbone",
    "resnet18",
    "resnet34",
    "resnet50",
    "vit_small",
    "vit_tiny",
]
