"""Shapes of the raw Kubernetes objects we read, and their identities."""
