"""Everything that knows HAProxy: rendering, and the process we supervise."""
