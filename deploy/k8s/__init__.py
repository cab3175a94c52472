"""Lemma on Kubernetes: kustomize base and overlays, and the generator of their repetitive parts."""
