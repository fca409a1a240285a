"""The multi-hybrid cloud: providers, external placement (burst), the provisioner and
reconciler that make the providers match the database, and the offers (issue #15)."""
