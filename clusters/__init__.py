"""Cluster registry, one Kubernetes ApiClient per cluster, workloads, PVCs, reachability (no temporalio)."""
