"""Experiment ``simsiam-collapse``: SimSiam needs its stop-gradient (and predictor); diagnostics see it.

[0] Chen, He, 2021, "Exploring Simple Siamese Representation Learning",
    https://arxiv.org/abs/2011.10566 (Sec. 4.1, Fig. 2; Table 1 for the predictor)
[1] Zhang et al., 2022, "How does SimSiam avoid collapse without negative samples?",
    https://arxiv.org/abs/2203.16262

Three runs with the same backbone, data, augmentations and SGD steps:

    predictor + stop-gradient   L = D(p1, sg(z2))/2 + D(p2, sg(z1))/2            (SimSiam)
    no stop-gradient            L = D(p1, z2)/2 + D(p2, z1)/2                     (term negative_cosine_no_stopgrad)
    no predictor                L = D(z1, sg(z2))/2 + D(z2, sg(z1))/2            (predictor = identity)

with D(p, z) = -cos(p, z). Every few steps a fixed batch of test images is embedded (train-mode
BatchNorm, frozen statistics) and three collapse indicators are recorded: the std of z/||z|| per
dimension averaged over dimensions (healthy about 1/sqrt(d), collapsed 0 [0]), the effective rank,
and Zhang et al.'s ||o|| / ||r|| (center over residual of the normalized embeddings [1]).

The projector has BatchNorm on its hidden layer but not on its output. With SimSiam's
non-affine output BatchNorm every output dimension has zero mean and unit variance over the
batch in train mode, so z cannot become constant; a run without stop-gradient then collapses
*dimensionally* (effective rank drops, std of z/||z|| stays near 1/sqrt(d)) instead of
completely. SimSiam's Table 4 reports that BN on the hidden layers alone also trains well.
"""

from __future__ import annotations

import math

from torch import nn

from covssl.diagnostics import collapse_report
from covssl.experiments import _training as tiny
from covssl.diagnostics import verdict
from covssl.experiments.registry import (
    Claim,
    Experiment,
    ExperimentOptions,
    ExperimentSummary,
    markdown_table,
    register_experiment,
)
from covssl.objectives import Objective

RUNS = {  # name -> (objective spec, predictor: "auto" = bottleneck MLP, or a module)
    "predictor + stop-gradient": ("negative_cosine:1", "auto"),
    "no stop-gradient": ("negative_cosine_no_stopgrad:1", "auto"),
    "no predictor": ("negative_cosine:1", "identity"),
}
COLLAPSE_STD = 0.1  # collapsed: std of z/||z|| below COLLAPSE_STD / sqrt(d)
HEALTHY_STD = 0.5  # not collapsed: above HEALTHY_STD / sqrt(d)


def setup_for(options: ExperimentOptions) -> tiny.TinySetup:
    """The full-size setup, or the quick one the tests run (a few seconds per run)."""
    size = 32 if options.dataset == "cifar10" else 16
    if options.quick:
        return tiny.TinySetup(image_size=size, width=0.25, hidden=64, dim=32, predictor_hidden=16, batch=64, steps=60,
                              lr=0.1, probe_every=10, probe_size=128, knn_bank=300, seed=options.seed)
    return tiny.TinySetup(image_size=size, steps=400, lr=0.05, probe_every=20, seed=options.seed)


def run(options: ExperimentOptions) -> ExperimentSummary:
    """Train the three variants; plot the indicators over steps; check who collapses."""
    from covssl.plots import Panel, Series, plot_panels

    setup = setup_for(options)
    data = tiny.prepare_data(setup, options.dataset, options.data_root, method="simsiam")
    results = {}
    for name, (spec, predictor) in RUNS.items():
        module = nn.Identity() if predictor == "identity" else predictor
        model = tiny.build_tiny_model(setup, Objective.from_spec(spec), module)
        result = tiny.train_and_probe(model, data, setup)
        report = collapse_report(tiny.probe(model, data.probe_images)[1])
        result["final"]["verdict"] = verdict(report)
        results[name] = result
    dim, healthy = setup.dim, 1.0 / math.sqrt(setup.dim)
    full, no_sg, no_pred = (results[name]["final"] for name in RUNS)

    def collapsed(final: dict) -> bool:
        return final["std_of_normalized"] < COLLAPSE_STD * healthy and final["verdict"] == "collapsed"

    claims = [
        Claim(f"no stop-gradient collapses: std of z/||z|| = {no_sg['std_of_normalized']:.4f} < 0.1/sqrt(d) = "
              f"{COLLAPSE_STD * healthy:.4f}, verdict '{no_sg['verdict']}', "
              f"||o||/||r|| = {no_sg['center_residual_ratio']:.3g}", collapsed(no_sg)),
        Claim(f"no predictor collapses (paper, Table 1): std = {no_pred['std_of_normalized']:.4f}, verdict "
              f"'{no_pred['verdict']}'", collapsed(no_pred)),
        Claim(f"predictor + stop-gradient does not: std = {full['std_of_normalized']:.4f} > 0.5/sqrt(d) = "
              f"{HEALTHY_STD * healthy:.4f}, verdict '{full['verdict']}'",
              full["std_of_normalized"] > HEALTHY_STD * healthy and full["verdict"] == "healthy"),
    ]
    header = ["run", "std of z/norm(z)", "x sqrt(d)", "effective rank", "center/residual", "final loss", "kNN top-1",
              "verdict"]
    rows = [[n, f["std_of_normalized"], f["std_of_normalized"] * math.sqrt(dim), f["effective_rank"],
             f["center_residual_ratio"], f["loss"], f.get("knn_top1", math.nan), f["verdict"]]
            for n, f in ((n, r["final"]) for n, r in results.items())]

    def curves(key: str) -> list[Series]:
        steps = lambda r: [h["step"] for h in r["history"]]  # noqa: E731
        return [Series(n, steps(r), [h[key] for h in r["history"]], "o-") for n, r in results.items()]

    panels = [
        Panel("std of z/||z|| (mean over dims)", curves("std_of_normalized"), ylabel="std", logy=True,
              hlines={"healthy 1/sqrt(d)": healthy, "collapse threshold 0.1/sqrt(d)": COLLAPSE_STD * healthy}),
        Panel("effective rank of z", curves("effective_rank"), ylabel="erank",
              hlines={f"maximum: min(B-1, d) = {dim}": float(dim)}),
        Panel("||o|| / ||r|| (center / residual)", curves("center_residual_ratio"), ylabel="ratio", logy=True),
        Panel("training loss", curves("loss"), ylabel="loss", hlines={"minimum -1": -1.0}),
    ]
    figure = "simsiam_collapse.png"
    title = f"SimSiam ablations on {options.dataset} (d = {dim}, batch {setup.batch})"
    plot_panels(panels, options.out / figure, title=title, columns=2, shared_legend=True)
    numbers = {"setup": setup.__dict__, "final": {n: r["final"] for n, r in results.items()},
               "history": {n: r["history"] for n, r in results.items()}}
    return ExperimentSummary(
        "simsiam-collapse", "SimSiam without stop-gradient or predictor collapses", numbers, claims,
        tables=["## Numbers (fixed probe batch, end of training)\n\n" + markdown_table(header, rows)],
        notes=[f"{setup.steps} SGD steps (lr {setup.lr}, momentum 0.9), batch {setup.batch}, small_convnet width "
               f"{setup.width}, projector {setup.hidden} -> {dim}, predictor bottleneck {setup.predictor_hidden}; "
               f"probe: {setup.probe_size} test images every {setup.probe_every} steps.",
               "Verdict thresholds: see covssl.experiments.embeddings (collapsed: sqrt(d) std < 0.1 or erank < 1.5).",
               "The effective rank is scale-invariant: a collapsed run's tiny residual can still have a spread-out "
               "shape, so read it together with the std and ||o||/||r||.",
               "kNN: weighted kNN (k = 20, T = 0.1) on eval-mode backbone features; the backbone can stay informative "
               "while the projector output collapses."],
        figures=[figure],
    )


register_experiment(
    Experiment("simsiam-collapse", run, "SimSiam without stop-gradient / predictor collapses; with both it does not")
)
