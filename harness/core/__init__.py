"""The ground floor every wing stands on: typed errors and failure kinds, settings (params.yaml), where things live in
a checkout, the records the audit writes, locks, atomic files, progress, untrusted YAML, provenance and the plug-in
registries. It imports no wing."""
