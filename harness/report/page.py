"""report/index.html: one self-contained page (plots as inline SVG, image crops as inline PNG, a few
lines of script to sort the table; nothing fetched), rendered from report.json's content."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

from harness.catalogue import metrics as M
from harness.core.project import Project
from harness.report.files import (
    fmt,
    gaps_by_fix,
    headline,
    metric_names,
    remedy_text,
    shown_digits,
    signed,
    verdict_label,
)

VERDICT_COLOURS = {"exact": "#1a7f37", "reproduced": "#2da44e", "diverged": "#cf222e", "failed": "#bc4c00",
                   "not_runnable": "#6e7781"}


def render(report: dict, proj: Project) -> str:
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("harness.report", "templates"),
                                     autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True,
                                     lstrip_blocks=True)
    environment.filters["fmt"] = fmt
    environment.filters["label"] = verdict_label
    environment.filters["shown_digits"] = shown_digits
    environment.filters["short_sha"] = short_sha
    environment.filters["remedy"] = remedy_text
    environment.filters["signed"] = signed
    teams = report["teams"]
    names = metric_names(teams, computed_only=True)
    sections = [team_section(proj, report["dataset"], row) for row in teams]
    return environment.get_template("report.html").render(
        report=report, teams=teams, names=names, specs=M.all_specs(), deviations=deviation_chart(teams, names),
        sections=sections, colours=VERDICT_COLOURS, leaderboards=report.get("leaderboards", {}),
        headline=report.get("headline") or headline(teams), gaps=gaps_by_fix(teams),
        passing=all(r["verdict"] in ("exact", "reproduced", "not_runnable") for r in teams))


def short_sha(sha: str | None) -> str:
    """The commit's first 12 digits, and whether the checkout had uncommitted changes."""
    if not sha:
        return "unknown"
    return sha[:12] + (" +dirty" if sha.endswith("+dirty") else "")


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


def deviation_chart(teams: list[dict], names: list[str]) -> str | None:
    """How far each reproduced mean is from its published value, in tolerances (delta / tolerance), one
    row per team and a marker per metric: inside the band at +-1 it reproduces. Values past the axis'
    limit are drawn at the limit, as an arrow."""
    rows = [(r["team"], {n: m for n, m in r["metrics"].items() if m.get("reproduced") is not None
                         and m.get("tolerance")}) for r in teams]
    rows = [(team, cells) for team, cells in rows if cells]
    if not rows:
        return None
    shown = [n for n in names if any(n in cells for _, cells in rows)]
    ratios = [cells[n]["delta"] / cells[n]["tolerance"] for _, cells in rows for n in cells]
    limit = min(20.0, max(3.0, max(abs(v) for v in ratios) * 1.15))
    figure, axes = _figure(width=6.2, height=0.32 * len(rows) + 1.1)
    axes.axvspan(-1, 1, color="#dafbe1", zorder=0)
    axes.axvline(0, color="#8c959f", linewidth=0.8, zorder=1)
    markers = "osD^vP*X"
    for index, name in enumerate(shown):
        points = [(cells[name]["delta"] / cells[name]["tolerance"], row) for row, (_, cells) in enumerate(rows)
                  if name in cells]
        inside = [(v, r) for v, r in points if abs(v) <= limit]
        axes.plot([v for v, _ in inside], [r for _, r in inside], markers[index % len(markers)], markersize=5,
                  color=f"C{index}", label=M.all_specs()[name].title, zorder=3)
        for value, row in ((v, r) for v, r in points if abs(v) > limit):  # beyond the axis: at its edge
            edge = limit if value > 0 else -limit
            axes.plot([edge], [row], ">" if value > 0 else "<", markersize=7, color=f"C{index}", zorder=3)
            axes.annotate(f"{value:.0f}x", (edge, row), textcoords="offset points", xytext=(-6 if value > 0 else 6, 5),
                          ha="right" if value > 0 else "left", fontsize=6, color=f"C{index}")
    axes.set_yticks(range(len(rows)))
    axes.set_yticklabels([team for team, _ in rows])
    axes.invert_yaxis()
    axes.set_xlim(-limit, limit)
    axes.set_xlabel("(reproduced - published) / tolerance; the green band is within tolerance")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=7)
    return _svg(figure)


def team_section(proj: Project, dataset: str, row: dict) -> dict:
    """A team's plots: per image, one chart for each published metric with per-image values (and the LR
    consistency without ground truth); its runs' band; its worst images, each tile labelled."""
    evidence = row.get("evidence") or {}
    section: dict[str, Any] = {"row": row, "per_image_plots": [], "runs_plot": None, "crops": []}
    per_image = evidence.get("per_image") or {}
    charted = [n for n in row["metrics"] if n in per_image] or [n for n in ("lr_consistency",) if n in per_image]
    for name in charted:
        section["per_image_plots"].append(per_image_bars(per_image[name], name, row["metrics"].get(name)))
    bands = {n: m for n, m in row["metrics"].items() if m.get("run_values")}
    if bands:
        section["runs_plot"] = run_strips(bands)
    for worst in evidence.get("worst", []):
        section["crops"].append({**worst, "tiles": crop_tiles(proj, dataset, row["team"],
                                                               next(iter(evidence["run_means"])), worst)})
    return section


def per_image_bars(values: dict, name: str, published: dict | None) -> str:
    """Per-image values, worst first; the published mean as a line."""
    title = "LR consistency (dB, Y)" if name == "lr_consistency" else M.all_specs()[name].title
    lower_better = name != "lr_consistency" and M.all_specs()[name].lower_better
    known = {s: v for s, v in values.items() if v is not None}
    order = sorted(known, key=lambda stem: known[stem], reverse=lower_better)
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
    for index, row in enumerate(bands.values()):
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


def crop_tiles(proj: Project, dataset: str, team_id: str, run: str, worst: dict) -> list[dict]:
    """The LR enlarged by bicubic, the output, the reference and |output - reference|, at the same place:
    each a labelled PNG."""
    import cv2

    from harness.imaging.matlab_resize import imresize
    from harness.imaging.pictures import encode_png, read_rgb8
    from harness.report.evidence import crop_inputs, image_paths

    paths = image_paths(proj, team_id, dataset, run, worst["image"])
    if not paths["output"].exists():
        return []
    ground_truth = worst["compared_with"] == "ground truth"
    output, reference = crop_inputs(paths, ground_truth)
    top, left, height, width = worst["crop"]
    window = (slice(top, top + height), slice(left, left + width))
    upscaled = imresize(read_rgb8(paths["lr"]), 4)[:output.shape[0], :output.shape[1]]
    diff = np.abs(output[window].astype(np.int16) - reference[window].astype(np.int16)).max(axis=2)
    heat = cv2.applyColorMap(np.clip(diff * (255.0 / max(1, diff.max())), 0, 255).astype(np.uint8),
                             cv2.COLORMAP_INFERNO)[:, :, ::-1]
    tiles = [("LR, bicubic x4", upscaled[window]), ("output", output[window])]
    if ground_truth:
        tiles.append(("ground truth", reference[window]))
    tiles.append((f"|output - {worst['compared_with']}|, max {int(diff.max())}", heat))
    return [{"label": label, "png": "data:image/png;base64," +
             base64.b64encode(encode_png(np.ascontiguousarray(tile))).decode()} for label, tile in tiles]


def write(report: dict, proj: Project, out_dir: Path) -> Path:
    from harness.core.files import write_bytes_atomic

    path = Path(out_dir) / "index.html"
    write_bytes_atomic(path, render(report, proj).encode())
    return path
