"""The command line: ``covssl train | eval | methods | export | config | terms | diagnose | compare | experiment``.

    covssl train                                   # offline default (-c digits/demo): minutes on a CPU
    covssl train -c cifar10/vicreg data.root=/path/to/cifar10-jpeg.tar.gz train.epochs=20
    torchrun --nproc_per_node=2 -m covssl train -c cifar10/vicreg ...
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Covariance-regularized self-supervised learning.")
console = Console()
errors = Console(stderr=True)  # failures: one "error:" line on stderr, exit code 2


def _fail(error: Exception) -> None:
    from rich.markup import escape

    # escape: "covssl[plot]" must print as is; soft_wrap: one line however long (paths), for logs and scripts
    errors.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
    raise typer.Exit(code=2)


@app.command(context_settings={"allow_extra_args": False})
def train(
    overrides: Optional[List[str]] = typer.Argument(None, help="section.key=value overrides, e.g. optim.lr=0.1"),
    config: str = typer.Option(
        "digits/demo", "--config", "-c", help="YAML file or shipped config (digits/demo, cifar10/vicreg, ...)"
    ),
    resume: bool = typer.Option(False, "--resume", help="continue the run in train.out_dir from its last checkpoint"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the run already in train.out_dir"),
    download: bool = typer.Option(False, "--download", help="fetch CIFAR's official archive if missing (needs internet)"),
) -> None:
    """Train an encoder; ends by printing kNN accuracy next to random init and raw pixels.

    covssl config -c NAME key=value... prints the configuration this would run, each key with its meaning (covssl config --list: the shipped configs); covssl terms lists the objective terms a method.objective spec can combine.
    """
    from covssl.resolve import load_config
    from covssl.distributed import is_main_process
    from covssl.train import train as run_training

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        resolved = load_config(config, [*(overrides or []), *(["data.download=true"] if download else [])])
        result = run_training(resolved, resume=resume, overwrite=overwrite)
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
        return
    except KeyboardInterrupt as stopped:
        console.print(f"[yellow]stopped:[/] {stopped}; continue with --resume")
        raise typer.Exit(code=130) from None
    if not is_main_process():
        return
    table = Table(title=f"kNN top-1 (k={resolved.eval.knn_k}, T={resolved.eval.knn_temperature}) — {resolved.data.dataset}")
    table.add_column("encoder")
    table.add_column("accuracy", justify="right")
    trained = f"{resolved.method.name} (trained, {result.epochs} epochs, {result.step} steps, {result.precision})"
    labels = {"trained": trained, "random_init": "random init", "raw_pixels": "raw pixels"}
    for key, label in labels.items():
        if key in result.knn:
            table.add_row(label, f"{100 * result.knn[key]:.2f}%")
    if result.linear_probe is not None:
        table.add_row("linear probe (trained)", f"{100 * result.linear_probe:.2f}%")
    console.print(table)
    console.print(
        f"run folder: {result.run_dir}  ({result.images_per_second:.0f} images/s, {result.wall_seconds / 60:.1f} min in all)"
    )


@app.command("eval")
def evaluate(
    run: Path = typer.Argument(..., help="run folder or checkpoint file"),
    linear: bool = typer.Option(False, "--linear", help="also train a linear probe"),
    image_size: Optional[int] = typer.Option(
        None, "--image-size", min=1, help="side of the evaluated images (default: the run's eval.image_size)"
    ),
) -> None:
    """kNN (and linear-probe) accuracy of a trained checkpoint."""
    import torch

    from covssl.train.data import load_splits
    from covssl.train.evaluation import KnnEvaluator, eval_transform
    from covssl.train.restore import load_run

    try:
        config, model, step = load_run(run)
        splits = load_splits(config.data, config.train.seed)
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
        return
    if image_size is not None:
        config.eval.image_size = image_size
    evaluator = KnnEvaluator(splits, eval_transform(config), torch.device("cpu"), config.eval)
    knn, probe = evaluator.knn_and_probe(model.backbone, config.eval.linear_epochs if linear else None)
    console.print(f"step {step}: kNN top-1 {100 * knn:.2f}%")
    if probe is not None:
        console.print(f"linear probe top-1 {100 * probe:.2f}%")


@app.command()
def methods() -> None:
    """List the methods with their objective (formula) and defaults."""
    from covssl.methods import METHODS
    from covssl.objectives import get_term
    from covssl.objectives.spec import parse_spec

    table = Table(title="covssl methods (L = L_align + sum_k lambda_k Omega_k)")
    table.add_column("method", no_wrap=True)
    for column in ("objective spec", "terms", "CIFAR defaults", "paper"):
        table.add_column(column, overflow="fold")
    for name in sorted(METHODS):
        method = METHODS[name]
        formulas = "\n".join(f"{t.name}: {get_term(t.name).formula}" for t in parse_spec(method.objective).terms)
        model, optim = method.model, method.optim
        widths = [*model.get("projector_hidden", []), model.get("projector_out", "?")]
        shown = f"projector {'-'.join(map(str, widths))}"
        if model.get("predictor_hidden"):
            shown += f", predictor {model['predictor_hidden']}"
        if model.get("ema_momentum") is not None:
            shown += f", EMA {model['ema_momentum']}"
        shown += f"; {optim.get('optimizer')} lr {optim.get('lr')}/256, wd {optim.get('weight_decay')}"
        crops = method.crops
        if crops.get("global_crops", 2) != 2 or crops.get("local_crops"):
            shown += f"; views {crops.get('global_crops', 2)} global + {crops.get('local_crops', 0)} local"
        shown += f"; {method.views} augmentations"
        table.add_row(name, method.objective, formulas, shown, method.paper)
    console.print(table)
    console.print("Compose your own: covssl train method.objective='mse:25 + coding_rate(eps=0.5):1'")


@app.command()
def export(
    run: Path = typer.Argument(..., help="run folder or checkpoint file"),
    out: Path = typer.Argument(..., help="output folder for backbone.safetensors + backbone.json"),
) -> None:
    """Export the trained backbone as safetensors + JSON (loadable with covssl.export.load_backbone)."""
    from covssl.export import export_backbone
    from covssl.train.restore import load_run

    try:
        config, model, _ = load_run(run)
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
        return
    from covssl.methods.model import backbone_kwargs

    folder = export_backbone(model.backbone, config.model.backbone, backbone_kwargs(config), out)
    console.print(f"exported {config.model.backbone} to {folder}")


from covssl.analysis_cli import register as _register_analysis  # noqa: E402  (diagnose, experiment)
from covssl.compare_cli import register as _register_compare  # noqa: E402  (compare)
from covssl.config_cli import register as _register_config  # noqa: E402  (config, terms)

_register_analysis(app)
_register_compare(app)
_register_config(app, _fail)
