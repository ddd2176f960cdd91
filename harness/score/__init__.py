"""Scoring outputs as the organizers did: pairing, per-image metrics, a team's evaluation, and where scoring runs."""
