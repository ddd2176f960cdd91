"""Challenges as data: each challenges/<id>.yaml names a challenge's datasets, tracks, score formulas and
ranking rules, validated by schemas/challenge.schema.json. Metrics are only named here; their facts stay
in the metric registry (harness.catalogue.metrics). A score is a derived metric: its name is shared by every
challenge that defines it, so two definitions under one name must agree.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

from harness.core import safe_yaml
from harness.core.errors import ManifestError, ManifestProblem
from harness.core.settings import CHALLENGES_DIR, SCHEMAS_DIR


@dataclass(frozen=True)
class ScoreTerm:
    """One metric's share of a score: max(floor, offset + scale * mean), or, relative to a baseline,
    weight * exp(exp_ratio * mean / baseline)."""

    metric: str
    scale: float = 0.0
    offset: float = 0.0
    floor: float | None = None
    exp_ratio: float | None = None
    weight: float = 1.0

    def value(self, mean: float, baseline: float | None = None) -> float:
        if self.exp_ratio is not None:
            if not baseline:
                raise ValueError(f"{self.metric}: a term relative to the baseline needs the baseline's value")
            return self.weight * math.exp(self.exp_ratio * mean / baseline)
        term = self.offset + self.scale * mean
        return term if self.floor is None else max(self.floor, term)

    def sensitivity(self, mean: float, baseline: float | None = None) -> float:
        """How much the term moves per unit of the metric (for the rounding slack)."""
        if self.exp_ratio is not None and baseline:
            return abs(self.value(mean, baseline) * self.exp_ratio / baseline)
        return abs(self.scale)


@dataclass(frozen=True)
class Score:
    """A derived metric: the sum of its terms, computed on the per-metric means."""

    name: str
    title: str
    precision: int
    terms: tuple[ScoreTerm, ...]
    tolerance_abs: float = 0.0
    tolerance_rel: float = 0.0
    direction: str = "higher"
    baseline: str | None = None  # the team whose means the exp_ratio terms are relative to

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(term.metric for term in self.terms)

    @property
    def relative(self) -> bool:
        return any(term.exp_ratio is not None for term in self.terms)

    def value(self, means: dict[str, float], baseline: dict[str, float] | None = None) -> float:
        """The score of `means`; a relative score needs the baseline team's means too."""
        return sum(term.value(means[term.metric], (baseline or {}).get(term.metric)) for term in self.terms)

    def rounding_slack(self, precision: dict[str, int], values: dict[str, float] | None = None,
                       baseline: dict[str, float] | None = None) -> float:
        """How far a score recomputed from rounded published components may fall from the published one."""
        slack = sum(0.5 * 10 ** -precision.get(t.metric, 4)
                    * t.sensitivity((values or {}).get(t.metric, 0.0), (baseline or {}).get(t.metric))
                    for t in self.terms)
        return slack + 0.5 * 10 ** -precision.get(self.name, self.precision) + 1e-9

    def inconsistency(self, values: dict[str, float], precision: dict[str, int]) -> str | None:
        """Why published values break this score's formula beyond their rounding, or None (a relative score
        is checked where the baseline is known: the leaderboard)."""
        if self.relative or self.name not in values or not all(m in values for m in self.components):
            return None
        recomputed = self.value(values)
        slack = self.rounding_slack(precision)
        delta = recomputed - values[self.name]
        if abs(delta) > slack:
            return (f"{values[self.name]} but the components give {recomputed:.{self.precision}f} "
                    f"(off by {delta:+.{self.precision}f}, rounding allows {slack:.{self.precision}f})")
        return None


@dataclass(frozen=True)
class Track:
    id: str  # key of the rank in a manifest's published ranks
    name: str  # value in a manifest's tracks list
    title: str
    metrics: tuple[str, ...]
    rank_by: str  # "" for a track ranked by a sum of ranks
    direction: str  # "higher" or "lower": which value ranks first
    gates: tuple[tuple[str, str, float], ...] = ()  # (metric, dataset, at least): only teams reaching them rank
    rank_sum: tuple[str, ...] = ()  # ids of the tracks whose ranks are added up (harness.verdict.rank_sums)

    def sort_key(self, value: float) -> float:
        return -value if self.direction == "higher" else value

    def rule(self) -> str:
        if self.rank_sum:
            return f"{self.id} ranks by the sum of the ranks in {' + '.join(self.rank_sum)}, lowest first"
        return f"{self.id} ranks by {self.rank_by}, {self.direction} first"


@dataclass(frozen=True)
class DatasetRole:
    id: str
    role: str  # "test" or "validation"
    declared: dict | None  # title, description, images, hr_origin: a dataset the user imports


@dataclass(frozen=True)
class Challenge:
    id: str
    name: str
    path: Path
    data: dict
    datasets: tuple[DatasetRole, ...]
    scores: dict[str, Score]
    tracks: tuple[Track, ...]

    @property
    def test_dataset(self) -> str:
        return next(d.id for d in self.datasets if d.role == "test")

    def track(self, track_id: str) -> Track:
        return next(t for t in self.tracks if t.id == track_id)

    @property
    def baseline(self) -> str | None:
        return self.data.get("baseline")

    @property
    def measured_on(self) -> dict | None:
        return self.data.get("measured_on")

    @property
    def trusted_code(self) -> dict[str, str]:
        """Team id -> the digest of the maintainers' own code in its folder (harness.run.sandbox.code_digest)."""
        return dict(self.data.get("trusted_code", {}))

    def tolerance_override(self, metric: str) -> dict | None:
        return self.data.get("tolerances", {}).get(metric)

    @property
    def model_counter(self) -> str:
        """Whose FLOPs the published values are: 'model_summary' (the organizers' own counter) or 'fvcore'."""
        return self.data.get("model_counter", "fvcore")

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric the challenge's tracks report, in track order: what an audit of the challenge computes."""
        return tuple(dict.fromkeys(name for track in self.tracks for name in track.metrics))

    @property
    def references(self) -> tuple[str, ...]:
        """Rows of the published table that are not teams (baselines, an earlier winner): listed, never ranked."""
        return tuple(self.data.get("references", ()))

    @property
    def bar(self) -> tuple[tuple[str, str, float], ...]:
        """The published quality bar (metric, dataset, at least), which decides nobody's rank here."""
        return tuple((g["metric"], g["dataset"], g["at_least"]) for g in self.data.get("bar", []))


@functools.lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads((SCHEMAS_DIR / "challenge.schema.json").read_text()))


def _parse(path: Path) -> Challenge:
    shown = f"challenges/{path.name}"
    _, data = safe_yaml.read_mapping(path, shown, "a challenge")
    problems = [ManifestProblem(shown, ".".join(str(p) for p in e.absolute_path), e.message, "schema")
                for e in sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))]
    if problems:
        raise ManifestError(problems)
    scores = {s["name"]: Score(s["name"], s["title"], s["precision"],
                               tuple(ScoreTerm(t["metric"], t.get("scale", 0.0), t.get("offset", 0.0), t.get("floor"),
                                               t.get("exp_ratio"), t.get("weight", 1.0)) for t in s["terms"]),
                               s.get("tolerance", {}).get("abs", 0.0), s.get("tolerance", {}).get("rel", 0.0),
                               s.get("direction", "higher"), data.get("baseline"))
              for s in data.get("scores", [])}
    tracks = tuple(Track(t["id"], t["name"], t["title"], tuple(t["metrics"]), t.get("rank_by", ""), t["direction"],
                         tuple((g["metric"], g["dataset"], g["at_least"]) for g in t.get("gate", [])),
                         tuple(t.get("rank_sum", ())))
                   for t in data["tracks"])
    datasets = tuple(DatasetRole(d["id"], d["role"], {k: v for k, v in d.items() if k not in ("id", "role")} or None)
                     for d in data["datasets"])
    return Challenge(data["id"], data["name"], path, data, datasets, scores, tracks)


def _problems(challenge: Challenge) -> list[ManifestProblem]:
    """What the schema cannot see within one file. Names of metrics and datasets are checked by the
    registries that own them (metric_problems, dataset_problems)."""
    shown = f"challenges/{challenge.path.name}"
    problems = []

    def problem(field, message, rule, hint=None):
        problems.append(ManifestProblem(shown, field, message, rule, hint))

    if challenge.path.stem != challenge.id:
        problem("id", f"'{challenge.id}' but the file is {challenge.path.name}", "id-matches-file",
                f"rename the file to {challenge.id}.yaml")
    ids = [t.id for t in challenge.tracks]
    for i, track in enumerate(challenge.tracks):
        for part in track.rank_sum:
            if part not in ids or challenge.track(part).rank_sum:
                problem(f"tracks.{i}.rank_sum", f"'{part}' is not a track of the challenge ranked by a value",
                        "rank-sum-of-tracks", f"tracks: {', '.join(ids)}")
        if track.rank_sum:
            continue
        if track.rank_by not in track.metrics:
            problem(f"tracks.{i}.rank_by", f"'{track.rank_by}' is not one of the track's metrics", "rank-by-reported")
        score = challenge.scores.get(track.rank_by)
        if score is not None and track.direction != score.direction:
            problem(f"tracks.{i}.direction", f"{score.name} is better when {score.direction}", "direction-agrees")
    for field in ("id", "name"):
        seen = [getattr(t, field) for t in challenge.tracks]
        for value in sorted({v for v in seen if seen.count(v) > 1}):
            problem("tracks", f"two tracks with {field} '{value}'", "tracks-unique")
    roles = [d.role for d in challenge.datasets]
    if roles.count("test") != 1:
        problem("datasets", f"{roles.count('test')} datasets with role test; a challenge has exactly one",
                "one-test-dataset")
    for i, dataset in enumerate(challenge.datasets):
        images = (dataset.declared or {}).get("images")
        if images and any(r["first"] > r["last"] for r in [images, *images.get("also", [])]):
            problem(f"datasets.{i}.images", "first is after last", "images-ordered")
    for name, score in challenge.scores.items():
        if score.relative and not score.baseline:
            problem(f"scores.{name}", "terms with exp_ratio need the challenge's baseline team", "baseline-named",
                    "name it: baseline: TEAM")
    return problems


def metric_problems(challenges: dict[str, Challenge], computed: dict) -> list[ManifestProblem]:
    """Every metric a challenge names is a computed metric of the registry (`computed`: name -> spec) or a
    score; a track ranks by a computed metric the way the registry says it is better."""
    known = list(computed) + [n for c in challenges.values() for n in c.scores]
    problems = []
    for challenge in challenges.values():
        shown = f"challenges/{challenge.path.name}"

        def check(field, name, allowed, shown=shown):
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                problems.append(ManifestProblem(shown, field, f"unknown metric '{name}'", "known-metric",
                                                f"did you mean '{close[0]}'?" if close
                                                else f"known: {', '.join(allowed)}"))

        for name, score in challenge.scores.items():
            if name in computed:
                problems.append(ManifestProblem(shown, f"scores.{name}", f"'{name}' is a computed metric of the "
                                                "registry", "score-name-free", "give the score another name"))
            for j, term in enumerate(score.terms):
                check(f"scores.{name}.terms.{j}.metric", term.metric, list(computed))
        for i, track in enumerate(challenge.tracks):
            for j, name in enumerate(track.metrics):
                check(f"tracks.{i}.metrics.{j}", name, known)
            spec = computed.get(track.rank_by)  # a rank-sum track has none
            if spec is not None and (track.direction == "lower") != spec.lower_better:
                problems.append(ManifestProblem(
                    shown, f"tracks.{i}.direction", f"'{track.direction}' but {track.rank_by} is better when "
                    f"{'lower' if spec.lower_better else 'higher'}", "direction-agrees"))
        for name in challenge.data.get("tolerances", {}):
            check(f"tolerances.{name}", name, known)
    return problems


def dataset_problems(challenges: dict[str, Challenge], builtin: list[str]) -> list[ManifestProblem]:
    """Every dataset a challenge names is built in (`builtin`: ids) or declared, by one challenge only."""
    problems: list[ManifestProblem] = []
    declared: dict[str, str] = {}
    for challenge in challenges.values():
        shown = f"challenges/{challenge.path.name}"
        for i, dataset in enumerate(challenge.datasets):
            if dataset.declared is None:
                continue
            if dataset.id in builtin:
                problems.append(ManifestProblem(shown, f"datasets.{i}.id", f"'{dataset.id}' is built in and cannot "
                                                "be declared again", "dataset-unique", "give only its id and role"))
            elif dataset.id in declared:
                problems.append(ManifestProblem(shown, f"datasets.{i}.id", f"'{dataset.id}' is also declared by "
                                                f"challenges/{declared[dataset.id]}", "dataset-unique"))
            declared.setdefault(dataset.id, challenge.path.name)
    for challenge in challenges.values():
        for i, dataset in enumerate(challenge.datasets):
            if dataset.declared is None and dataset.id not in builtin and dataset.id not in declared:
                problems.append(ManifestProblem(
                    f"challenges/{challenge.path.name}", f"datasets.{i}.id",
                    f"'{dataset.id}' is neither built in nor declared", "known-dataset",
                    f"built in: {', '.join(builtin)}; or declare it with title, description, images and hr_origin"))
    return problems


@functools.lru_cache(maxsize=4)
def _catalogue(folder: Path) -> dict[str, Challenge]:
    challenges: dict[str, Challenge] = {}
    problems = []
    for path in sorted(folder.glob("*.yaml")):
        challenge = _parse(path)
        if challenge.id in challenges:
            problems.append(ManifestProblem(f"challenges/{path.name}", "id", f"'{challenge.id}' is also the id of "
                                            f"{challenges[challenge.id].path.name}", "id-unique"))
        challenges[challenge.id] = challenge
        problems += _problems(challenge)
    first: dict[str, Challenge] = {}
    for challenge in challenges.values():
        for name, score in challenge.scores.items():
            if name in first and first[name].scores[name] != score:
                problems.append(ManifestProblem(
                    f"challenges/{challenge.path.name}", f"scores.{name}",
                    f"defined differently in challenges/{first[name].path.name}", "score-defined-once",
                    "a score's name is shared by every challenge: give a different formula another name"))
            first.setdefault(name, challenge)
    if problems:
        raise ManifestError(problems)
    return challenges


def catalogue() -> dict[str, Challenge]:
    """Every challenge, by id, validated together (a score name or dataset is shared across them)."""
    if not CHALLENGES_DIR.is_dir():
        raise ManifestError([ManifestProblem(str(CHALLENGES_DIR), "", "no challenges/ folder", "exists",
                                             "a checkout and an installed wheel both carry challenges/")])
    return _catalogue(CHALLENGES_DIR)


def get(challenge_id: str) -> Challenge:
    challenges = catalogue()
    if challenge_id not in challenges:
        close = difflib.get_close_matches(challenge_id, list(challenges), n=1)
        raise ManifestError([ManifestProblem("challenges/", "", f"unknown challenge '{challenge_id}'",
                                             "known-challenge", f"did you mean '{close[0]}'?" if close
                                             else f"known: {', '.join(challenges)}")])
    return challenges[challenge_id]


def scores() -> dict[str, Score]:
    """Every derived metric, by name, in the order the challenges define them."""
    out: dict[str, Score] = {}
    for challenge in catalogue().values():
        for name, score in challenge.scores.items():
            out.setdefault(name, score)
    return out


def declared_datasets() -> dict[str, dict]:
    """Datasets that challenges declare (the user imports their images): id -> declaration."""
    return {d.id: d.declared for c in catalogue().values() for d in c.datasets if d.declared}
