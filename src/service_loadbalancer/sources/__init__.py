"""Where objects come from: a directory of manifests, or (later) the API server."""
