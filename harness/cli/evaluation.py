"""Scoring: evaluate (folders, anywhere) and evaluate-team (every run of a team, into evaluations/)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.audit import dvc_record, workflow
from harness.catalogue import datasets, roster
from harness.catalogue.metrics import parse_metric_list
from harness.cli import render
from harness.cli.render import lit, progress_display
from harness.cli.session import EXIT_CHECK_FAILED, Session, device_option, finite_option, json_option, pass_session
from harness.core import settings
from harness.core.files import write_json_atomic
from harness.core.progress import Step
from harness.score import evaluation as evaluate_mod

METRICS_HELP = ("Comma-separated metric names; `harness metrics` lists them (default: params.yaml; psnr, ssim, niqe "
                "outside a checkout).")
DEVICE_HELP = "Device for the learned metrics: cpu, cuda or cuda:N (default: params.yaml)."
WORKERS_HELP = "Processes scoring images on a CPU (default: params.yaml's eval_workers; auto: every core)."
MEGAPIXELS_HELP = ("Refuse images that declare more pixels than this, before decoding them (default: params.yaml's "
                   "max_image_megapixels, 50).")


@click.command()
@click.option("--sr", "sr_dir", type=click.Path(path_type=Path), required=True, help="Folder of output PNGs.")
@click.option("--hr", "hr_dir", type=click.Path(path_type=Path), help="Folder of ground-truth PNGs.")
@click.option("--lr", "lr_dir", type=click.Path(path_type=Path),
              help="Folder of the LR inputs: adds the LR-consistency check; without --hr, only the no-reference "
                   "metrics are computed.")
@click.option("--metrics", "metric_list", help=METRICS_HELP)
@click.option("--mode", type=click.Choice(settings.MODES),
              help="faithful: the organizers' repairs, each reported; strict: such images fail (default: params.yaml).")
@device_option(DEVICE_HELP)
@click.option("--workers", type=click.IntRange(min=1), help=WORKERS_HELP)
@finite_option("--max-megapixels", MEGAPIXELS_HELP)
@json_option("Also write the result here as JSON.")
@click.option("--allow-unavailable", is_flag=True,
              help="Exit 0 even when an asked metric could not be computed (its weights are absent, no --hr).")
@click.option("--allow-findings", is_flag=True,
              help="Exit 0 even when a finding was raised (a repair, an output that fits its LR input badly).")
@pass_session
def evaluate(session: Session, sr_dir, hr_dir, lr_dir, metric_list, mode, device, workers, max_megapixels,
             json_out, allow_unavailable, allow_findings):
    """Score a folder of outputs against ground truth exactly as the organizers did; works anywhere.

    Outputs are every *.png in --sr, paired with --hr by removing 'x4' from the name. PSNR/SSIM on
    the Y channel after a crop to a multiple of 4 and a 4-pixel shave; the learned metrics through
    pyiqa from the harness's weight cache. Metrics whose weights are absent are reported as
    unavailable, never as 0.

    With --lr, each output is also downscaled x4 (MATLAB bicubic) and compared with its input: an
    output that fits its input clearly better with its channels reordered, shifted by a pixel or two,
    or that fits another input better, is a finding naming the image. Without --hr (the NTIRE test
    set's ground truth is not public), the full-reference metrics and the perceptual score are
    unavailable and the rest is computed as with it.

    Exit codes: 0 every asked metric computed on every image, with no finding; 1 an image failed, an asked
    metric could not be computed, or a finding was raised (--allow-unavailable, --allow-findings accept the
    last two); 2 the evaluation could not be made (bad input, missing folders).
    """
    if not (hr_dir or lr_dir):
        raise click.UsageError("give --hr, --lr or both")
    here, cache, _ = session.here
    chosen = here.given(metrics=parse_metric_list(metric_list) if metric_list else None, mode=mode, device=device,
                        eval_workers=workers, max_image_megapixels=max_megapixels)
    with progress_display() as progress:
        result = evaluate_mod.evaluate(sr_dir, hr_dir, list(chosen.metrics), chosen.mode, cache, chosen.device,
                                       lambda done, total, name: progress(Step("evaluating", None, done, total)),
                                       lr_dir, chosen.workers, chosen.max_image_megapixels)
    if session.verbose:
        render.out(f"scored in {result.workers} process(es): {lit(result.workers_reason)}")
    # every bit of each value: this is a file of one's own, not one the pipeline keeps (those are `stated`)
    payload = {**result.as_dict(), "sr": str(sr_dir), "hr": str(hr_dir) if hr_dir else None,
               "lr": str(lr_dir) if lr_dir else None}
    if json_out:
        write_json_atomic(json_out, payload)
    render.evaluation(payload)
    gaps = [name for name in result.metrics if name in result.unavailable]
    raised = [f for f in result.findings if f["severity"] != "info"]
    reasons = ([f"{len(result.failed_images)} image(s) failed"] if result.status != "ok" else []) + \
        ([f"not computed: {', '.join(gaps)} (--allow-unavailable accepts that)"] if gaps and not allow_unavailable
         else []) + \
        ([f"{len(raised)} finding(s) raised (--allow-findings accepts them)"] if raised and not allow_findings else [])
    if reasons:
        render.err(f"[red]not a clean evaluation[/red]: {lit('; '.join(reasons))}", soft_wrap=True)
        sys.exit(EXIT_CHECK_FAILED)


@click.command("evaluate-team")
@click.argument("team_id")
@click.option("--dataset", help="The dataset (default: params.yaml).")
@click.option("--metrics", "metric_list", help=METRICS_HELP)
@click.option("--mode", type=click.Choice(settings.MODES),
              help="faithful: the organizers' repairs, each reported; strict: such images fail (default: params.yaml).")
@device_option(DEVICE_HELP)
@click.option("--workers", type=click.IntRange(min=1), help=WORKERS_HELP)
@finite_option("--max-megapixels", MEGAPIXELS_HELP)
@json_option("Write the result here (default: evaluations/<dataset>/<team>.json).")
@click.option("--evaluator", "evaluator_name", type=click.Choice(settings.EVALUATORS),
              help="Score here, or in the evaluator image with no network (default: params.yaml).")
@pass_session
def evaluate_team_command(session: Session, team_id, dataset, metric_list, mode, device, workers, max_megapixels,
                          json_out, evaluator_name):
    """Score every run of TEAM_ID into evaluations/<dataset>/<team>.json and metrics/ (the pipeline's
    evaluate stage), exactly as `harness evaluate` scores one folder."""
    proj = session.project
    chosen = session.settings.given(dataset=dataset, metrics=parse_metric_list(metric_list) if metric_list else None,
                                    mode=mode, device=device, eval_workers=workers,
                                    max_image_megapixels=max_megapixels, evaluator=evaluator_name)
    team = roster.load(proj, team_id)
    target, why = dvc_record.place(proj, team.id, chosen.dataset, chosen, dvc_record.published_source(chosen),
                                 chosen.executor)
    if why:
        render.out(f"[dim]not the pipeline's evaluation: {lit(why)}; it goes to "
                   f"{session.shown(target.evaluations_dir)}/[/dim]", soft_wrap=True)
    with progress_display() as progress:
        result = workflow.evaluate_team(target, team, datasets.get(chosen.dataset), chosen, progress, json_out)
    render.team_evaluation(result, session.verbose)


COMMANDS = [evaluate, evaluate_team_command]
