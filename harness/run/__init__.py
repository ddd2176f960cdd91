"""Running a team: inference with its run record, published outputs taken as a run, the runners (local sandbox, Docker,
Podman), environments and images, Slurm."""
