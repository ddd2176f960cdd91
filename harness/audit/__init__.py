"""The workflow that ties the wings together: verify one team, the plan, the doctor, the smoke test, the DVC record."""
