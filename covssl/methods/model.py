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
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector: nn.Module,
        objective: Objective,
        predictor: nn.Module | None = None,
        ema_momentum: float | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.predictor = predictor
        self.objective = objective
        if objective.needs_predictions and predictor is None:
            raise ValueError(f"objective {objective.spec!r} needs a predictor: set model.predictor_hidden > 0")
        self.target: EMATarget | None = None
        if ema_momentum is not None:
            self.target = EMATarget(nn.Sequential(backbone, projector), momentum=ema_momentum)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, out_dim): what kNN and the linear probe evaluate."""
        return self.backbone(images)

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> tuple[ObjectiveOutput, torch.Tensor]:
        """The objective on two augmented views (B, 3, H, W) of the same images.

        Returns:
            The objective's output and the first view's embeddings z1 (B, d), detached, for the
            collapse indicators the loop logs.
        """
        batch = view1.shape[0]
        feats = self.backbone(torch.cat([view1, view2]))  # (2B, out_dim): one pass, shared BN statistics
        z = self.projector(feats)  # (2B, d)
        z1, z2 = z[:batch], z[batch:]
        online = z1.detach()
        if self.predictor is None:
            return self.objective(z1, z2), online
        p = self.predictor(z)  # (2B, d)
        p1, p2 = p[:batch], p[batch:]
        if self.target is not None:
            with torch.no_grad():
                t = self.target.module(torch.cat([view1, view2]))  # (2B, d) targets from the EMA network
            z1, z2 = t[:batch], t[batch:]
        return self.objective(z1, z2, p1, p2), online

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """Move the EMA target towards the online network (no-op without a target)."""
        if self.target is not None:
            self.target.update(nn.Sequential(self.backbone, self.projector), momentum=momentum)


def backbone_kwargs(config: RunConfig) -> dict[str, object]:
    """Keyword arguments for the configured backbone (cifar_stem only where the backbone has a stem)."""
    if config.model.backbone.startswith("timm:"):
        return {}  # timm models take their own architecture arguments
    kwargs: dict[str, object] = {"width": config.model.width}
    if config.model.backbone.startswith("resnet"):
        kwargs["cifar_stem"] = config.model.cifar_stem
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
    return SSLModel(backbone, projector, objective, predictor, config.model.ema_momentum)
