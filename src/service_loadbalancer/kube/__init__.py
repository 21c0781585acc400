"""The Kubernetes edge: raw objects and their identities, name formats, the API client,
and the watch policy (pure). Nothing here knows HAProxy or the model."""
