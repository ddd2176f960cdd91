"""harness: a containerized reproducibility harness for NTIRE 2025 image super-resolution x4."""

__version__ = "0.1.0"
