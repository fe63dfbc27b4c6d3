"""SimDINO (v1): student-to-teacher cosine alignment over multi-crop views plus a coding rate.

[0] Wu, Zhang, Pai, Wang, Singh, Yang, Gao, Ma, 2025, "Simplifying DINO via Coding Rate
    Regularization", https://arxiv.org/abs/2502.10385
    Official code: https://github.com/RobinWu218/SimDINO (``MCRLoss`` in simdino/main_dino.py).

With V_s student views s_v (B, d), the first G of them global crops, and T >= G teacher views
t_g (B, d), teacher view g being the same crop as student view g for g < G (T = G = 2 officially):

    ns, nt     = the rows of s, t l2-normalized
    pairs      = {(g, v): g < T, v < V_s, not (v = g < G)}          every student view to every
                                                                   teacher view but its own crop
    similarity = mean_{(g, v) in pairs} mean_b cos(nt_gb, ns_vb)    (official ``comp_loss``)
    distance   = 1 - similarity = mean over pairs and samples of 1/2 ||nt_gb - ns_vb||^2
    w_g        = (ns_g + nt_g) / 2                                  for g < G (``expa_type=1``)
    R(w)       = 1/2 logdet(I_d + d / (B eps) w^T w)
    coding_rate = gamma * mean_{g < G} R(w_g),  gamma = (d + B) / (d B)   (official ``expa_loss``)
    loss       = -coeff * similarity - coding_rate = coeff * (distance - 1) - coding_rate

``loss`` is the official value, whose constant -coeff the paper's objective
coeff * distance - gamma R drops; the gradients are the same.

What the official code does, and where it differs from the paper and from covssl:

* the embeddings are the head's l2-normalized 256-d outputs (SimDINO drops DINO's prototype layer,
  its teacher softmax, temperatures and centering; SimDINOv2's config: ``remove_last_layer``,
  ``head_normalize``); here every row is normalized inside (a no-op for them). The official
  similarity is ``F.cosine_similarity``, so the distance is the paper's d_l2 = 1/2 ||x - y||^2 =
  1 - cos of unit vectors, not 2 - 2 cos.
* the coding rate is on w_g, the mean of the student's and the teacher's g-th global view, not
  renormalized and not centered (a second moment); the README calls this smoothing "centering".
  ``average_teacher=False`` is ``expa_type=0``, the coding rate of the student's global views.
  The teacher enters w_g, so it must come detached (the official teacher has no gradient):
  this function does not detach it, the caller does.
* eps is NOT squared: a = d / (B eps), default 0.5 (``--eps``; the README's ViT-B/16 command and
  the SimDINOv2 config use 0.05). The paper writes d / eps^2 and so does covssl's
  :func:`~covssl.objectives.rate_distortion.coding_rate`: ``R`` here is ``coding_rate(w, sqrt(eps))``.
* gamma = (d + B) / (d B) = 1/B + 1/d, B the global batch N m, is the official "heuristic"
  balance (the paper's gamma); the official loss weighs the similarity by ``coeff`` (default 1).
* the official log-det is a Cholesky of the d x d matrix (``cholesky_ex``, unchecked: a failure
  gives NaN); here it is taken on the smaller side (B x B when B < d) and raises ValueError.

Scope (``TermDef.scope``, see :mod:`covssl.distributed`): global. The similarity is an average over
samples, but the coding rate uses the whole batch; pass the gathered batch (B = N m). That is the
official ``--reduce_cov 1``; the default ``--reduce_cov 0`` scales each rank's own w^T w by
d / (N m eps), a per-rank coding rate at eps N, which no function of the gathered batch reproduces.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from covssl._checks import check_non_negative, check_positive
from covssl.linalg import Path, logdet_identity_plus_gram, use_sample_side
from covssl.objectives.emp_ssl import _check_views, _common_dtype


def _check_num_global(num_global: object, num_teacher: int, num_student: int) -> int:
    limit = min(num_teacher, num_student)
    if isinstance(num_global, bool) or not isinstance(num_global, int):
        raise ValueError(f"num_global: expected an int in [1, {limit}], got {num_global!r}")
    if not 1 <= num_global <= limit:
        raise ValueError(
            f"num_global: expected an int in [1, min(len(teacher_views), len(student_views)) = {limit}], "
            f"got {num_global}"
        )
    return num_global


def simdino_loss(
    student_views: Sequence[torch.Tensor],
    teacher_views: Sequence[torch.Tensor],
    eps: float = 0.5,
    coeff: float = 1.0,
    num_global: int | None = None,
    average_teacher: bool = True,
    path: Path = "auto",
) -> dict[str, torch.Tensor]:
    """The SimDINO (v1) objective of the official ``MCRLoss`` (``expa_type=1``).

    similarity  = mean over pairs (g, v), v != g for g < G, of mean_b cos(t_gb, s_vb)
    coding_rate = (d + B) / (d B) * mean_{g < G} 1/2 logdet(I + d / (B eps) w_g^T w_g)
    loss        = -coeff * similarity - coding_rate,     distance = 1 - similarity

    with w_g = (ns_g + nt_g) / 2 the mean of the g-th normalized student and teacher global views
    (module docstring).

    Args:
        student_views: a list or tuple of V_s >= 2 student embeddings (batch, dim), batch >= 2,
            the first ``num_global`` of them the global crops (officially 2 global + 10 local).
        teacher_views: a list or tuple of T >= 1 teacher embeddings of the global crops, in the
            order of the student's, same shape; DETACHED by the caller (the EMA teacher).
        eps: distortion of the coding rate, > 0, unsquared as in the official code (default 0.5).
        coeff: weight of the similarity, >= 0 (official ``--coeff``: 1).
        num_global: how many leading student views are the crops of ``teacher_views[:num_global]``
            (their own-crop pairs are skipped and their coding rates taken), in
            [1, min(T, V_s)]; default T.
        average_teacher: take the coding rate of (student + teacher) / 2 (official ``expa_type=1``,
            default) or of the student's global views alone (``expa_type=0``).
        path: "auto" (B x B log-dets when B < d), "feature" (d x d) or "sample" (B x B).

    Returns:
        Dict of scalar tensors: "loss" (the official value, to minimize); "distance", the mean of
        1/2 ||nt - ns||^2 = 1 - cos over the pairs, in [0, 2] (to minimize); "coding_rate", the
        gamma-scaled official ``expa_loss`` (to maximize). Float32 for half inputs.

    Raises:
        ValueError: on bad input, or when a log-det's matrix is not numerically positive definite.

    Examples:
        >>> student = [torch.randn(16, 32) for _ in range(6)]
        >>> teacher = [z.detach().clone() for z in student[:2]]
        >>> out = simdino_loss(student, teacher)
        >>> sorted(out)
        ['coding_rate', 'distance', 'loss']
        >>> bool(out["coding_rate"] > 0)
        True
    """
    student_views = _check_views(student_views, "student_views")
    teacher_views = _check_views(teacher_views, "teacher_views", min_views=1)
    if teacher_views[0].shape != student_views[0].shape:
        raise ValueError(
            f"teacher_views[0]: expected the same shape as student_views[0] "
            f"{tuple(student_views[0].shape)}, got {tuple(teacher_views[0].shape)}"
        )
    num_teacher, num_student = len(teacher_views), len(student_views)
    num_global = _check_num_global(num_teacher if num_global is None else num_global, num_teacher, num_student)
    eps = check_positive(eps, "eps")
    coeff = check_non_negative(coeff, "coeff")
    if not isinstance(average_teacher, bool):
        raise ValueError(f"average_teacher: expected a bool, got {average_teacher!r}")
    batch, dim = student_views[0].shape
    use_sample_side(batch, dim, path)  # validates ``path`` before any work
    with torch.autocast(device_type=student_views[0].device.type, enabled=False):
        dtype = _common_dtype([*student_views, *teacher_views])
        ns = F.normalize(torch.stack([z.to(dtype) for z in student_views]), p=2, dim=-1)  # (V_s, B, d)
        nt = F.normalize(torch.stack([z.to(dtype) for z in teacher_views]), p=2, dim=-1)  # (T, B, d)
        # mean_b cos(nt_gb, ns_vb) for every (g, v): the rows are unit vectors (or zero)
        cosines = torch.einsum("gbd,vbd->gv", nt, ns) / batch  # (T, B, d) x (V_s, B, d) -> (T, V_s)
        keep = torch.ones(num_teacher, num_student, dtype=torch.bool, device=cosines.device)
        keep[torch.arange(num_global), torch.arange(num_global)] = False  # a crop is not its own target
        similarity = cosines[keep].mean()
        rate_views = (ns[:num_global] + nt[:num_global]) / 2 if average_teacher else ns[:num_global]  # (G, B, d)
        alpha = dim / (batch * eps)
        rates = [0.5 * logdet_identity_plus_gram(w, alpha, path) for w in rate_views]
        gamma = (dim + batch) / (dim * batch)
        coding_rate = gamma * torch.stack(rates).mean()
    return {"loss": -coeff * similarity - coding_rate, "distance": 1.0 - similarity, "coding_rate": coding_rate}
