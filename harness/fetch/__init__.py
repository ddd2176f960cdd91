"""Everything brought from elsewhere: datasets, team weights and code, metric weights (real, pinned, or stand-ins);
HTTP, Google Drive, archives."""
