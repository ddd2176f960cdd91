"""What is audited, as data: challenges, team manifests and the teams folder, datasets, the metric facts."""
