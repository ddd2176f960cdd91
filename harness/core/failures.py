"""Every kind of failure the harness records, with a one-line remediation.

A failure kind appears in run records, evaluations, verdicts and the report; a kind that is not
declared here cannot be raised (TypedFailure checks it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FailureKind:
    name: str
    stage: str  # where it happens: inputs, image, inference, slurm, evaluation, verification
    meaning: str
    remedy: str


KINDS: dict[str, FailureKind] = {k.name: k for k in [
    # inputs: before anything runs
    FailureKind("inputs_unavailable", "inputs", "the dataset or the team's weights are not in place",
                "run `harness fetch data` / `harness fetch weights TEAM`"),
    FailureKind("weights_unavailable", "inputs", "the team's weights could not be fetched or are absent",
                "fetch them (`harness fetch weights TEAM`) or place them by hand under weights/TEAM/"),
    FailureKind("data_unavailable", "inputs", "the dataset is absent, incomplete or fails its checksums",
                "run `harness fetch data DATASET` or `harness data import DATASET`"),
    FailureKind("download_failed", "inputs", "a download did not complete",
                "run the same command again: downloads resume"),
    FailureKind("checksum_mismatch", "inputs", "fetched bytes differ from their pinned sha256",
                "check the source; delete the pin only if the change is expected"),
    FailureKind("outputs_unavailable", "inputs", "the team's published outputs could not be collected",
                "pass a folder, archive, URL or gdrive:<id> with --from-outputs"),
    FailureKind("code_unavailable", "inputs", "the team's code checkout is absent",
                "run in the team's image, or pass --code-dir"),
    FailureKind("input_refused", "inputs", "a file breaks the input policy (a link out of its folder, not a "
                "regular file, names that differ only in case, an image past the size limit)",
                "replace the file named; raise max_image_megapixels for larger images"),
    FailureKind("missing_input", "inputs", "the LR folder holds no PNG", "check the dataset"),
    FailureKind("not_runnable", "inputs", "the entry cannot run as published (known in advance)",
                "see the manifest's status.reasons"),
    # images and engines
    FailureKind("engine_unavailable", "image", "no Docker engine answers", "start dockerd, or use runner: local"),
    FailureKind("build_failed", "image", "the team's image could not be built", "read the build log tail"),
    FailureKind("image_missing", "image", "a pinned image is neither present nor pullable",
                "pull or load the image, or use a recipe"),
    FailureKind("no_gpu", "image", "a GPU was asked for but none can be used",
                "install the NVIDIA Container Toolkit / a CUDA build, or run with --device cpu"),
    FailureKind("environment_failed", "image", "the team's local environment (its recipe family's packages) "
                "could not be built", "read the build log tail; fix the family's files or the manifest's "
                "runtime.extra_packages, or use runner: docker"),
    FailureKind("sandbox_unavailable", "image", "no sandbox can contain the team's code on this machine, and "
                "the local runner does not run untrusted code without one",
                "install bubblewrap (apt-get install bubblewrap), use runner: docker, or accept the risk "
                "with --unsafe-no-sandbox"),
    FailureKind("incompatible_gpu", "image", "the image's torch build does not serve this GPU",
                "use an image whose CUDA build supports the GPU's compute capability"),
    FailureKind("unsupported_device", "inference", "the team does not run on the requested device",
                "use a device from the manifest's runtime.devices"),
    # inference
    FailureKind("weights_mismatch", "inference", "a weights file does not fit the network the manifest describes",
                "check the weights' source and weights[].network (class, args, key)"),
    FailureKind("entry_error", "inference", "the team's code raised, or its entry is misdeclared",
                "read the log tail; check the manifest's entry section"),
    FailureKind("timeout", "inference", "no result within runtime.timeout_s", "raise runtime.timeout_s"),
    FailureKind("out_of_memory", "inference", "the run ran out of memory",
                "raise runtime.memory_gb / docker.memory_gb, or enable tiling"),
    FailureKind("killed", "inference", "the adapter was killed (SIGKILL)", "check the kernel log for the OOM killer"),
    FailureKind("nonzero_exit", "inference", "the adapter or container exited with an error code",
                "read the log tail"),
    FailureKind("missing_output", "inference", "an LR input has no output", "check the team's output naming"),
    FailureKind("extra_output", "inference", "outputs that match no LR input were written",
                "outputs must carry the LR file names"),
    FailureKind("wrong_size", "inference", "an output is not scale x its input, or not a PNG",
                "check runtime.scale and the team's output format"),
    # slurm
    FailureKind("cancelled", "slurm", "the Slurm job was cancelled or preempted", "submit it again"),
    FailureKind("node_failure", "slurm", "the Slurm node failed", "submit it again"),
    # evaluation
    FailureKind("not_run", "evaluation", "the team has no run record", "run `harness infer TEAM`"),
    FailureKind("evaluation_failed", "evaluation", "scoring failed (strict mode, or an evaluator error)",
                "see the run's failed_images and findings"),
    FailureKind("metric_unavailable", "evaluation", "none of the published metrics could be computed",
                "run `harness fetch metric-weights`"),
    FailureKind("wrong_metric_weights", "evaluation", "a learned metric's weight file has other bytes than the "
                "pinned ones, or other tensors than its network loads", "delete the file named and run "
                "`harness fetch metric-weights METRIC`"),
    FailureKind("no_ground_truth", "evaluation", "every published metric needs the ground truth, which the "
                "dataset lacks", "import the HR images: `harness data import DATASET --hr PATH`"),
    # verification
    FailureKind("not_evaluated", "verification", "the team has no evaluation", "run `harness verify TEAM`"),
    FailureKind("no_published_numbers", "verification", "the manifest publishes nothing for this dataset",
                "add published.<dataset> to the manifest"),
    FailureKind("too_few_runs", "verification", "a nondeterministic team was scored from fewer than 2 runs",
                "set determinism.repeats to at least 2"),
    FailureKind("stand_in_weights", "verification", "scored with stand-in metric weights (seeded random): such "
                "numbers measure nothing and are never compared with published ones",
                "fetch the real weights (`harness fetch metric-weights`) into a cache of their own and evaluate "
                "again; stand-ins serve `harness evaluate` into a scratch path and the benchmarks"),
    FailureKind("error", "verification", "the harness could not do its work for this team",
                "read the message; rerun with --debug for a traceback"),
]}

# Slurm accounting states at which a job is over, and the failure kind each one means.
SLURM_FINAL_STATES = {"COMPLETED": None, "FAILED": "nonzero_exit", "TIMEOUT": "timeout", "DEADLINE": "timeout",
                      "CANCELLED": "cancelled", "PREEMPTED": "cancelled", "NODE_FAIL": "node_failure",
                      "BOOT_FAIL": "node_failure", "OUT_OF_MEMORY": "out_of_memory"}


def remedy(kind: str) -> str | None:
    return KINDS[kind].remedy if kind in KINDS else None
