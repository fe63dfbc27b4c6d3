"""InfoNCE / NT-Xent: the contrastive loss of SimCLR.

[0] Chen, Kornblith, Norouzi, Hinton, 2020, "A Simple Framework for Contrastive Learning of
    Visual Representations", https://arxiv.org/abs/2002.05709
[1] van den Oord, Li, Vinyals, 2018, "Representation Learning with Contrastive Predictive
    Coding", https://arxiv.org/abs/1807.03748

The contrastive "dual" of the covariance regularizers: instead of keeping the d x d covariance
full-rank it pushes the 2B x 2B Gram matrix of the normalized embeddings towards the identity
(on the negatives), which spreads the batch over the sphere.

Distributed training: the negatives are the rows of the batch it is given; pass the globally
gathered z1, z2 to use the negatives of all ranks.
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``info_nce`` is global: 2N anchors
of the gathered batch, each with 2N - 2 negatives from all ranks (N global).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from covssl._checks import check_pair, check_positive
from covssl.linalg import at_least_float32


def info_nce_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent over the 2B views of a batch, every anchor with 2B - 2 negatives.

    Let z = [z1; z2] (2B rows), zn_i = z_i / ||z_i||, s_ik = zn_i . zn_k / tau, and pos(i) the
    other view of sample i (i + B mod 2B). Then

        l_i  = -log( exp(s_{i,pos(i)}) / sum_{k != i} exp(s_ik) )
        loss = (1 / 2B) sum_{i=1}^{2B} l_i

    The self-similarity s_ii is excluded from the denominator, so each anchor is classified
    among 1 positive and 2B - 2 negatives. Both views serve as anchors (the symmetric loss of
    [0]). The softmax runs in float32 or higher with autocast off: with tau = 0.1 the logits
    reach 10 and fp16/bf16 lose the differences between negatives.

    Args:
        z1: embeddings of the first view, shape (batch, dim), batch >= 2.
        z2: embeddings of the second view, shape (batch, dim).
        temperature: tau > 0 (SimCLR: 0.5 on CIFAR-10 with batch 512, 0.1 to 0.2 on ImageNet).

    Returns:
        Scalar tensor (float32 or float64). Its minimum over unit vectors is reached when each
        pair coincides and the pairs are spread apart; identical rows everywhere (collapse)
        give log(2B - 1).

    Examples:
        >>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
        >>> info_nce_loss(z1, z2, temperature=0.5).shape
        torch.Size([])
        >>> z = torch.ones(8, 16)  # collapsed: log(2 * 8 - 1)
        >>> round(info_nce_loss(z, z).item(), 4)
        2.7081
    """
    check_pair(z1, z2)
    tau = check_positive(temperature, "temperature")
    batch = z1.shape[0]
    with torch.autocast(device_type=z1.device.type, enabled=False):
        z = torch.cat([at_least_float32(z1), at_least_float32(z2)], dim=0)  # (2B, d)
        zn = F.normalize(z, dim=1)
        logits = zn @ zn.T / tau  # (2B, d) @ (d, 2B) -> (2B, 2B)
        # Masking with -inf (not a large negative number) removes s_ii exactly; the positive is
        # never on the diagonal, so every row keeps finite entries and the softmax is defined.
        self_mask = torch.eye(2 * batch, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        targets = torch.arange(2 * batch, device=z.device).roll(batch)  # pos(i) = i + B mod 2B
        return F.cross_entropy(logits, targets)
