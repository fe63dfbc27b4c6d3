"""Every method covssl ships, one entry each: objective, augmentation recipe, model and optimizer.

CIFAR settings follow the papers' CIFAR recipes where they publish one and solo-learn's [6]
otherwise: a 2048-wide projector for the covariance methods, SGD/LARS with the learning rates
reported for a batch of 256. The papers' ImageNet projectors, for reference (hidden dims -> d):
VICReg and Barlow Twins 8192, 8192 -> 8192; SimCLR 2048 -> 128; SimSiam 2048, 2048 -> 2048 with
BN on the output; BYOL 4096 -> 256 with a 4096-wide predictor; SimDINO's head 2048, 2048 -> 256.

[0] Bardes, Ponce, LeCun, 2021, VICReg, https://arxiv.org/abs/2105.04906
[1] Zbontar, Jing, Misra, LeCun, Deny, 2021, Barlow Twins, https://arxiv.org/abs/2103.03230
[2] Chen, Kornblith, Norouzi, Hinton, 2020, SimCLR, https://arxiv.org/abs/2002.05709
[3] Chen, He, 2021, SimSiam, https://arxiv.org/abs/2011.10566
[4] Grill et al., 2020, BYOL, https://arxiv.org/abs/2006.07733
[5] Ozsoy, Hamdan, Arik, Yuret, Erdogan, 2022, CorInfoMax, https://arxiv.org/abs/2209.07999
[6] da Costa, Fini, Nabi, Sebe, Ricci, 2022, solo-learn, https://arxiv.org/abs/2108.01775
[7] Wu et al., 2025, SimDINO, https://arxiv.org/abs/2502.10385; Yu et al., 2020, MCR2,
    https://arxiv.org/abs/2006.08558

The rest of the family follows; where a paper publishes no CIFAR recipe (VISReg, TiCo, MEC,
Matrix-SSL, I-VNE+, VIbCReg), the entry says whose CIFAR setting it borrows.
"""

from __future__ import annotations

from covssl.methods.registry import MethodDef, register_method

_COV_PROJECTOR = {"projector_hidden": [2048, 2048], "projector_out": 2048, "projector_last_bn": False}
_LARS = {"optimizer": "lars", "lr": 0.3, "weight_decay": 1e-4, "warmup_epochs": 10.0}

register_method(
    MethodDef(
        "vicreg",
        "mse:25 + variance_hinge:25 + covariance_penalty:1",
        "invariance + variance hinge + off-diagonal covariance (official weights 25/25/1)",
        "Bardes, Ponce, LeCun 2021, https://arxiv.org/abs/2105.04906",
        views="byol",  # [0] reuses BYOL's asymmetric views
        model=_COV_PROJECTOR,
        optim=_LARS,
    )
)
register_method(
    MethodDef(
        "barlow_twins",
        "barlow_twins(lambd=0.0051):1",
        "cross-correlation of standardized views driven to the identity",
        "Zbontar et al. 2021, https://arxiv.org/abs/2103.03230",
        views="byol",  # [1] reuses BYOL's asymmetric views
        model=_COV_PROJECTOR,
        optim=_LARS,
    )
)
register_method(
    MethodDef(
        "coding_rate",
        # R is a sum over the batch while the alignment is a mean, so R's weight is small.
        # eps convention: covssl's coding rate uses a = d / (B eps^2) (MCR^2's paper); SimDINO's,
        # EMP-SSL's and lightly's code use d / (B eps). covssl eps = 0.5 is their eps = 0.25.
        "cosine:1 + coding_rate(eps=0.5):0.005; normalize",
        "SimDINO-style: l2-normalize, align the views, maximize the coding rate (log-det)",
        "Wu et al. 2025, https://arxiv.org/abs/2502.10385; Yu et al. 2020, https://arxiv.org/abs/2006.08558",
        views="byol",  # [7] keeps DINO's augmentations, whose two global crops are BYOL's recipe
        model={"projector_hidden": [2048], "projector_out": 128, "projector_last_bn": False},
        optim=_LARS,
    )
)
register_method(
    MethodDef(
        "simclr",
        "info_nce(temperature=0.5):1",
        "NT-Xent contrastive loss, 2B-2 negatives per anchor",
        "Chen et al. 2020, https://arxiv.org/abs/2002.05709",
        views="simclr",
        model={"projector_hidden": [2048], "projector_out": 128, "projector_last_bn": False},  # [2] B.9
        optim={"optimizer": "lars", "lr": 0.4, "weight_decay": 1e-5, "warmup_epochs": 10.0},
    )
)
register_method(
    MethodDef(
        "simsiam",
        "negative_cosine:1",
        "predictor + stop-gradient, symmetric negative cosine",
        "Chen & He 2021, https://arxiv.org/abs/2011.10566",
        views="simsiam",
        # [3] appendix D: a 2-layer projector with BN on its output, a 512-wide bottleneck predictor
        model={"projector_hidden": [2048], "projector_out": 2048, "projector_last_bn": True, "predictor_hidden": 512},
        optim={"optimizer": "sgd", "lr": 0.03, "weight_decay": 5e-4, "warmup_epochs": 0.0},
    )
)
register_method(
    MethodDef(
        "corinfomax",
        "mse:250 + corinfomax:1; normalize",
        "running-covariance log-det (per view) + MSE alignment, official CIFAR-10 weights (d=64)",
        "Ozsoy et al. 2022, https://arxiv.org/abs/2209.07999",
        views="byol",  # [5] trains with the BYOL-style views of its solo-learn base
        model={"projector_hidden": [2048, 2048], "projector_out": 64, "projector_last_bn": False},
        optim={"optimizer": "sgd", "lr": 0.5, "weight_decay": 1e-4, "warmup_epochs": 10.0},
    )
)
register_method(
    MethodDef(
        "byol",
        # Scale: BYOL's loss is ||p/|p| - z/|z|||^2 = 2 - 2 cos per direction, summed over both
        # directions (solo-learn: 4 - 2 cos(p1, z2) - 2 cos(p2, z1)). negative_cosine averages
        # them, -(cos + cos) / 2: a quarter of that, up to a constant. With LARS the trust ratio
        # absorbs most of the factor; with SGD multiply the learning rate by 4 to match solo-learn.
        "negative_cosine:1",
        "online predictor chases an EMA target network (no negatives, no covariance term)",
        "Grill et al. 2020, https://arxiv.org/abs/2006.07733",
        views="byol",
        model={
            "projector_hidden": [4096],
            "projector_out": 256,
            "projector_last_bn": False,
            "predictor_hidden": 4096,
            "ema_momentum": 0.99,
        },
        optim={"optimizer": "lars", "lr": 1.0, "weight_decay": 1e-5, "warmup_epochs": 10.0},
    )
)
register_method(
    MethodDef(
        "visreg",
        # (1 - lambda) * LeJEPA's invariance + lambda * VISReg, lambda = 0.6 (the paper's small-data
        # value); with two views the invariance mean_v ||z_v - mean view||^2 is mse / 4.
        "mse:0.1 + visreg:0.6",
        "scale + centre + sliced-Wasserstein shape to N(0, I), fresh random slices every step",
        "Wu, Balestriero, Levine 2026, https://arxiv.org/abs/2606.02572",
        views="byol",
        # no CIFAR recipe published: the paper's 2048-2048-256 head, AdamW as in its ViT runs
        model={"projector_hidden": [2048, 2048], "projector_out": 256, "projector_last_bn": False},
        optim={"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 10.0},
    )
)
register_method(
    MethodDef(
        "frossl",
        "frossl:1",
        "log Frobenius norm of each view's trace-normalized covariance + MSE of unit-norm columns",
        "Skean et al. 2023, https://arxiv.org/abs/2310.02903",
        views="simclr",  # the official CIFAR config: SimCLR's symmetric views, no blur or solarize
        model={"projector_hidden": [2048, 2048], "projector_out": 1024, "projector_last_bn": False},
        optim=_LARS,  # the official CIFAR config: LARS lr 0.3, wd 1e-4, 1000 epochs
    )
)
register_method(
    MethodDef(
        "spectral_contrastive",
        "spectral_contrastive(mu=1):1",
        "-2 <z1_i, z2_i> + squared cross-view inner products of other pairs (spectral decomposition)",
        "HaoChen, Wei, Gaidon, Ma 2021, https://arxiv.org/abs/2106.04156",
        views="simsiam",  # the official CIFAR-10 config: SimSiam's augmentations
        model={"projector_hidden": [2048], "projector_out": 1000, "projector_last_bn": True},
        optim={"optimizer": "sgd", "lr": 0.03, "weight_decay": 5e-4, "warmup_epochs": 10.0},
    )
)
register_method(
    MethodDef(
        "tico",
        "tico(beta=0.9, rho=8):1",
        "cosine invariance + running-covariance contrast of the first view (its own alignment)",
        "Zhu et al. 2022, https://arxiv.org/abs/2206.10698",
        views="byol",
        # no CIFAR recipe published: the paper's 4096 -> 256 head with BYOL's CIFAR optimizer
        model={"projector_hidden": [4096], "projector_out": 256, "projector_last_bn": False},
        optim=_LARS,
    )
)
register_method(
    MethodDef(
        "mec",
        "mec(eps=64, order=4):1",
        "maximum entropy coding: Taylor series of the cross-view log-det (a coding length)",
        "Liu, Wang, Li, Wang 2022, https://arxiv.org/abs/2210.11464",
        views="byol",
        # the official ImageNet head and optimizer; the official code adds a predictor and an
        # EMA teacher, which this symmetric entry leaves out
        model={"projector_hidden": [2048, 2048], "projector_out": 2048, "projector_last_bn": True},
        optim={"optimizer": "sgd", "lr": 0.5, "weight_decay": 1e-5, "warmup_epochs": 10.0},
    )
)
register_method(
    MethodDef(
        "matrix_ssl",
        "matrix_ssl(lambd=0.5, mu=0.5, order=4, gamma=1):1",
        "matrix cross-entropy: cross-covariance to the identity + one view's covariance to the other's",
        "Zhang, Tan, Yang, Huang, Yuan 2024, https://arxiv.org/abs/2305.17326",
        views="byol",
        # the official ImageNet head and optimizer, symmetric (no EMA teacher), as for MEC
        model={"projector_hidden": [2048, 2048], "projector_out": 2048, "projector_last_bn": True},
        optim={"optimizer": "sgd", "lr": 0.5, "weight_decay": 1e-5, "warmup_epochs": 10.0},
    )
)
register_method(
    MethodDef(
        "w_mse",
        "wmse(w_size=128):1",
        "MSE of unit-norm views after Cholesky whitening over sub-batches of 128",
        "Ermolov, Siarohin, Sangineto, Sebe 2021, https://arxiv.org/abs/2007.06346",
        views="simsiam",  # the official CIFAR crops (scale 0.2-1) and jitter; its grayscale p is 0.1
        # the official CIFAR-10 run: 1024 -> 64 head, Adam lr 3e-3, wd 1e-6, ~500 warm-up steps
        model={"projector_hidden": [1024], "projector_out": 64, "projector_last_bn": False},
        optim={"optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-6, "warmup_epochs": 2.0},
    )
)
register_method(
    MethodDef(
        "i_vne",
        # I-VNE+: -(alpha_1 mean cos + alpha_2 VNE); cosine is 1 - cos, so this is that loss + 4.16
        "cosine:4.16 + von_neumann_entropy:1",
        "cosine invariance + von Neumann entropy of the unit-row autocorrelation, maximized",
        "Kim, Kang, Hwang, Shin, Rhee 2023, https://arxiv.org/abs/2304.01434",
        views="byol",
        # the official ImageNet-100 head and SGD; no CIFAR recipe published
        model={"projector_hidden": [2048, 2048], "projector_out": 256, "projector_last_bn": True},
        optim={"optimizer": "sgd", "lr": 0.4, "weight_decay": 1e-4, "warmup_epochs": 10.0},
    )
)
register_method(
    MethodDef(
        "vibcreg",
        # the official weights 25 / 25 / 200 with the two views' hinges and penalties summed;
        # the IterNorm at the end of VIbCReg's projector is not part of this entry
        "mse:25 + variance_hinge:50 + correlation_penalty:200",
        "VICReg with the covariance penalty on the correlation matrix (scale-free decorrelation)",
        "Lee & Aune 2021, https://arxiv.org/abs/2109.00783",
        views="byol",
        model=_COV_PROJECTOR,  # a time-series paper: VICReg's CIFAR setting
        optim=_LARS,
    )
)
register_method(
    MethodDef(
        "mmcr",
        "mmcr(lambd=0):1",
        "maximize the nuclear norm of the view centroids (manifold capacity), 40 views per image",
        "Yerxa, Kuang, Simoncelli, Chung 2023, https://arxiv.org/abs/2303.03307",
        views="simclr",  # the official CIFAR augmentations: SimCLR's, for every view
        # the official CIFAR run: 512 -> 128 head, Adam lr 1e-3, wd 1e-6, no warm-up, batch 32
        model={"projector_hidden": [512], "projector_out": 128, "projector_last_bn": False},
        optim={"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-6, "warmup_epochs": 0.0},
        crops={"global_crops": 40},
    )
)
register_method(
    MethodDef(
        "lejepa",
        # (1 - lambd) invariance to the mean of the global views + lambd SIGReg on every view
        "mse[to_global_mean]:0.95 + sigreg[all]:0.05",
        "each view to the global views' mean + Epps-Pulley test of random slices against N(0, 1)",
        "Balestriero & LeCun 2025, https://arxiv.org/abs/2511.08544",
        views="byol",
        # no CIFAR recipe published: the README's 2 global (30-100%) + 6 local (5-30%) crops and
        # its ResNet AdamW setting, lambd 0.05
        model={"projector_hidden": [2048, 2048], "projector_out": 256, "projector_last_bn": False},
        optim={"optimizer": "adamw", "lr": 5e-4, "weight_decay": 5e-4, "warmup_epochs": 10.0},
        crops={
            "view1": {"crop_scale": [0.3, 1.0]},
            "view2": {"crop_scale": [0.3, 1.0]},
            "local_crops": 6,
            "local_size": 16,
            "local": {"crop_scale": [0.05, 0.3]},
        },
    )
)
register_method(
    MethodDef(
        "emp_ssl",
        "emp_ssl(eps=0.2, lambd=200):1",
        "20 fixed-size patches per image: cosine to the patch mean + total coding rate per patch",
        "Tong, Chen, Ma, LeCun 2023, https://arxiv.org/abs/2304.03977",
        views="emp_ssl",
        # the official CIFAR-10 run: 4096-4096-1024 head, LARS(SGD) lr 0.3, wd 1e-4, eta 0.005,
        # batch 100, 20 patches (the README's command)
        model={"projector_hidden": [4096, 4096], "projector_out": 1024, "projector_last_bn": False},
        optim={"optimizer": "lars", "lr": 0.3, "weight_decay": 1e-4, "warmup_epochs": 0.0, "lars_eta": 0.005},
        crops={"global_crops": 20},
    )
)
register_method(
    MethodDef(
        "simdino",
        "simdino(eps=0.5, coeff=1):1",
        "every crop's student embedding to the EMA teacher's global crops + coding rate of the globals",
        "Wu et al. 2025, https://arxiv.org/abs/2502.10385",
        views="byol",  # DINO's global crops are BYOL's recipe
        # the official ImageNet recipe scaled to 32 px: 2 global (40-100%) + 8 local crops (5-40%,
        # 16 px), a 2048-2048-256 head, teacher momentum 0.996 -> 1, AdamW lr 5e-4, wd 0.04
        model={"projector_hidden": [2048, 2048], "projector_out": 256, "projector_last_bn": False,
               "ema_momentum": 0.996},
        optim={"optimizer": "adamw", "lr": 5e-4, "weight_decay": 0.04, "warmup_epochs": 10.0},
        crops={
            "view1": {"crop_scale": [0.4, 1.0]},
            "view2": {"crop_scale": [0.4, 1.0]},
            "local_crops": 8,
            "local_size": 16,
            "local": {"crop_scale": [0.05, 0.4]},
        },
    )
)
