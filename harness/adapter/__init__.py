"""What runs inside the sandbox or the team's image (`python -m harness.adapter`): loading a team's model, calling its
code as the organizers did, counting model metrics. It touches no Docker, DVC, Slurm or network."""
