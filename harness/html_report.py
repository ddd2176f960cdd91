"""report/index.html: one self-contained page (plots as inline SVG, image crops as inline PNG, a few
lines of script to sort the table; nothing fetched), rendered from report.json's content."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from . import metrics as M
from .project import Project
from .report import fmt, metric_names, verdict_label

VERDICT_COLOURS = {"exact": "#1a7f37", "reproduced": "#2da44e", "diverged": "#cf222e", "failed": "#bc4c00",
                   "not_runnable": "#6e7781"}


def render(report: dict, proj: Project) -> str:
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("harness", "templates"),
                                     autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True,
                                     lstrip_blocks=True)
    environment.filters["fmt"] = fmt
    environment.filters["label"] = verdict_label
    teams = report["teams"]
    names = metric_names(teams)
    plots = {name: published_vs_reproduced(teams, name) for name in names}
    sections = [team_section(proj, report["dataset"], row) for row in teams]
    return environment.get_template("report.html").render(
        report=report, teams=teams, names=names, specs=M.all_specs(), plots={k: v for k, v in plots.items() if v},
        sections=sections, colours=VERDICT_COLOURS, leaderboards=report.get("leaderboards", {}))


def _svg(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prologue: the SVG sits inside the HTML


def _figure(width=3.5, height=2.8):
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update({"svg.fonttype": "none", "font.size": 8, "axes.spines.top": False,
                                "axes.spines.right": False, "svg.hashsalt": "harness"})
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def published_vs_reproduced(teams: list[dict], name: str) -> str | None:
    """Each team's reproduced value against its published one, tolerance as error bars, on y = x."""
    points = [(r["team"], r["metrics"][name], r["verdict"]) for r in teams
              if name in r["metrics"] and r["metrics"][name].get("reproduced") is not None]
    if not points:
        return None
    figure, axes = _figure()
    published = [p[1]["published"] for p in points]
    reproduced = [p[1]["reproduced"] for p in points]
    low, high = min(published + reproduced), max(published + reproduced)
    pad = (high - low) * 0.15 or abs(high) * 0.05 or 1.0
    axes.plot([low - pad, high + pad], [low - pad, high + pad], color="#8c959f", linewidth=0.8, zorder=1)
    for team, row, verdict in points:
        axes.errorbar(row["published"], row["reproduced"], yerr=row["tolerance"], fmt="o", markersize=4,
                      capsize=3, color=VERDICT_COLOURS["reproduced" if row["ok"] else "diverged"], zorder=2)
        axes.annotate(team, (row["published"], row["reproduced"]), textcoords="offset points", xytext=(5, 3),
                      fontsize=7)
    axes.set_xlim(low - pad, high + pad)
    axes.set_ylim(low - pad, high + pad)
    axes.set_xlabel(f"published {M.all_specs()[name].title}")
    axes.set_ylabel("reproduced")
    return _svg(figure)


def team_section(proj: Project, dataset: str, row: dict) -> dict:
    evidence = row.get("evidence") or {}
    section = {"row": row, "per_image_plot": None, "runs_plot": None, "crops": []}
    per_image = evidence.get("per_image") or {}
    shown = next((n for n in ("psnr", "niqe", "lr_consistency") if n in per_image), None)
    if shown:
        section["per_image_plot"] = per_image_bars(per_image[shown], shown, row["metrics"].get(shown))
    bands = {n: m for n, m in row["metrics"].items() if m.get("run_values")}
    if bands:
        section["runs_plot"] = run_strips(bands)
    for worst in evidence.get("worst", []):
        section["crops"].append({**worst, "png": crops_png(proj, dataset, row["team"],
                                                            next(iter(evidence["run_means"])), worst)})
    return section


def per_image_bars(values: dict, name: str, published: dict | None) -> str:
    """Per-image values, worst first; the published mean as a line."""
    title = "LR consistency (dB, Y)" if name == "lr_consistency" else M.all_specs()[name].title
    lower_better = name != "lr_consistency" and M.all_specs()[name].lower_better
    known = {s: v for s, v in values.items() if v is not None}
    order = sorted(known, key=known.get, reverse=lower_better)
    figure, axes = _figure(width=max(3.0, min(9.0, 0.35 * len(order) + 1.5)), height=2.4)
    axes.bar(range(len(order)), [known[s] for s in order], color="#54aeff")
    if published:
        axes.axhline(published["published"], color="#cf222e", linewidth=1, label="published mean")
        axes.legend(loc="upper left", frameon=False, fontsize=7)
    axes.set_xticks(range(len(order)))
    axes.set_xticklabels(order, rotation=90 if len(order) > 12 else 0)
    axes.set_ylabel(title)
    axes.set_title(f"{title} per image, worst first", fontsize=8)
    spread = max(known.values()) - min(known.values()) if known else 0
    if spread:
        axes.set_ylim(min(known.values()) - spread * 0.5, max(known.values()) + spread * 0.45)
    return _svg(figure)


def run_strips(bands: dict) -> str:
    """For a nondeterministic team: each run's mean, the band the published value must fall in, and the
    published value, one row per metric (normalised to the band)."""
    figure, axes = _figure(width=5.0, height=0.45 * len(bands) + 0.8)
    for index, (name, row) in enumerate(bands.items()):
        low, high = row["band"]
        width = high - low or 1.0
        axes.plot([0, 1], [index, index], color="#d0d7de", linewidth=6, solid_capstyle="butt")
        axes.plot([(v - low) / width for v in row["run_values"]], [index] * len(row["run_values"]), "o",
                  color="#0969da", markersize=4)
        axes.plot([(row["published"] - low) / width], [index], "|", color="#cf222e", markersize=14,
                  markeredgewidth=2)
    axes.set_yticks(range(len(bands)))
    axes.set_yticklabels([M.all_specs()[n].title for n in bands])
    axes.set_xticks([0, 1])
    axes.set_xticklabels(["band low", "band high"])
    axes.set_xlim(-0.1, 1.1)
    axes.set_title("runs (blue) within the band (grey); published value (red)", fontsize=8)
    return _svg(figure)


def crops_png(proj: Project, dataset: str, team_id: str, run: str, worst: dict) -> str | None:
    """LR enlarged by bicubic, the output, the reference and |output - reference|, at the same place."""
    import cv2

    from .evidence import crop_inputs, image_paths
    from .imageio import encode_png, read_rgb8
    from .imresize import imresize

    paths = image_paths(proj, team_id, dataset, run, worst["image"])
    if not paths["output"].exists():
        return None
    ground_truth = worst["compared_with"] == "ground truth"
    output, reference = crop_inputs(paths, ground_truth)
    top, left, height, width = worst["crop"]
    window = (slice(top, top + height), slice(left, left + width))
    upscaled = imresize(read_rgb8(paths["lr"]), 4)[:output.shape[0], :output.shape[1]]
    diff = np.abs(output[window].astype(np.int16) - reference[window].astype(np.int16)).max(axis=2)
    heat = cv2.applyColorMap(np.clip(diff * (255.0 / max(1, diff.max())), 0, 255).astype(np.uint8),
                             cv2.COLORMAP_INFERNO)[:, :, ::-1]
    tiles = [upscaled[window], output[window]] + ([reference[window]] if ground_truth else []) + [heat]
    gap = np.full((height, 4, 3), 255, np.uint8)
    strip = np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)
    return "data:image/png;base64," + base64.b64encode(encode_png(np.ascontiguousarray(strip))).decode()


def write(report: dict, proj: Project, out_dir: Path) -> Path:
    from .fsutil import write_bytes_atomic

    path = Path(out_dir) / "index.html"
    write_bytes_atomic(path, render(report, proj).encode())
    return path
