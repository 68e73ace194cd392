"""The local lab: real Kubernetes control planes, a Temporal dev server, the storage simulator and demo data."""
