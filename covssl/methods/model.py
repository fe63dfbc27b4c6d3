"""The model around an objective: backbone -> projector (-> predictor), optional EMA target.

The objective never sees the backbone; the model never computes a loss term itself.
"""

from __future__ import annotations

import torch
from torch import nn

from covssl.config import RunConfig
from covssl.methods.registry import objective_spec
from covssl.models import EMATarget, Predictor, Projector, create_backbone
from covssl.objectives import Objective, ObjectiveOutput


class SSLModel(nn.Module):
    """Backbone + projector (+ predictor) trained by an :class:`Objective`.

    Args:
        backbone: images (B, 3, H, W) -> features (B, backbone.out_dim).
        projector: features -> embeddings z (B, d).
        objective: the loss on (z1, z2[, p1, p2]).
        predictor: optional head z -> p (SimSiam, BYOL).
        ema_momentum: if set, targets come from an EMA copy of backbone + projector (BYOL).
        num_global: how many of the views are global crops (multi-crop; the rest are local).
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector: nn.Module,
        objective: Objective,
        predictor: nn.Module | None = None,
        ema_momentum: float | None = None,
        num_global: int = 2,
    ) -> None:
        super().__init__()
        self.num_global = num_global
        self.backbone = backbone
        self.projector = projector
        self.predictor = predictor
        self.objective = objective
        if objective.needs_predictions and predictor is None:
            raise ValueError(f"objective {objective.spec!r} needs a predictor: set model.predictor_hidden > 0")
        if objective.needs_targets and ema_momentum is None:
            raise ValueError(f"objective {objective.spec!r} needs an EMA teacher: set model.ema_momentum")
        self.target: EMATarget | None = None
        if ema_momentum is not None:
            self.target = EMATarget(nn.Sequential(backbone, projector), momentum=ema_momentum)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, out_dim): what kNN and the linear probe evaluate."""
        return self.backbone(images)

    def forward(self, *views: torch.Tensor) -> tuple[ObjectiveOutput, torch.Tensor]:
        """The objective on V >= 2 augmented views (B, 3, H, W) of the same images.

        The first ``num_global`` views are global crops (one size), the others local crops (another
        size): each group goes through the backbone in one pass (shared BN statistics within it).
        An EMA target, if any, embeds the global views only; they are the predictions' targets.

        Returns:
            The objective's output and the first view's embeddings z1 (B, d), detached, for the
            collapse indicators the loop logs.
        """
        batch, num_global = views[0].shape[0], min(self.num_global, len(views))
        groups = [views[:num_global], views[num_global:]]
        z = torch.cat([self.projector(self.backbone(torch.cat(group))) for group in groups if group])  # (VB, d)
        embeddings = list(z.split(batch))
        online = embeddings[0].detach()
        targets = None
        if self.target is not None:
            with torch.no_grad():
                targets = list(self.target.module(torch.cat(groups[0])).split(batch))  # G x (B, d), EMA network
        if self.predictor is None:  # a distillation term (SimDINO) compares the views with the targets
            return self.objective.over_views(embeddings, num_global=num_global, targets=targets), online
        predictions = list(self.predictor(z).split(batch))  # V x (B, d)
        if targets is not None:  # the predictions chase the EMA network's global views (BYOL)
            embeddings[:num_global] = targets
        return self.objective.over_views(embeddings, predictions, num_global=num_global), online

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """Move the EMA target towards the online network (no-op without a target)."""
        if self.target is not None:
            self.target.update(nn.Sequential(self.backbone, self.projector), momentum=momentum)


def backbone_kwargs(config: RunConfig) -> dict[str, object]:
    """Keyword arguments for the configured backbone: cifar_stem where the backbone has a stem, and
    the ViTs' position grid at the global crops' size (other sizes interpolate it)."""
    if config.model.backbone.startswith("timm:"):
        return {}  # timm models take their own architecture arguments
    kwargs: dict[str, object] = {"width": config.model.width}
    if config.model.backbone.startswith("resnet"):
        kwargs["cifar_stem"] = config.model.cifar_stem
    if config.model.backbone.startswith("vit"):
        kwargs["image_size"] = config.augment.image_size
    return kwargs


def build_model(config: RunConfig) -> SSLModel:
    """Build the model a run configuration describes."""
    objective = Objective.from_spec(objective_spec(config), dim=config.model.projector_out)
    backbone = create_backbone(config.model.backbone, **backbone_kwargs(config))
    projector = Projector(
        backbone.out_dim,
        list(config.model.projector_hidden),
        config.model.projector_out,
        last_batch_norm=config.model.projector_last_bn,
    )
    predictor = None
    if config.model.predictor_hidden > 0:
        predictor = Predictor(config.model.projector_out, config.model.predictor_hidden)
    return SSLModel(backbone, projector, objective, predictor, config.model.ema_momentum, config.augment.global_crops)
