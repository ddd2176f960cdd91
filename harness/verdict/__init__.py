"""Published versus reproduced: tolerances, bands, verdicts, ranks and uncertainty. It imports neither score nor run."""
