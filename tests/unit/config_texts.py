"""Configuration texts the unit tests share: two clusters and one csi-addons group, the smallest valid file."""

MINIMAL_CONFIG = """\
clusters:
  - name: dc1
    site: dc1
    kubeconfig: kubeconfig
  - name: dc2
    site: dc2
    kubeconfig: kubeconfig
groups:
  - name: pg-prod
    namespace: pg-prod
    backend: csi-addons
    clusters: [dc1, dc2]
    replication:
      name: postgres
"""
