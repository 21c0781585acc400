"""service-loadbalancer: Kubernetes Services and their endpoints to a live HAProxy.

The package is laid out in one direction: sources fill a store, `translate` turns a
snapshot of the store into a neutral model, `haproxy.render` turns the model into
config text, and the reconciler applies it to a supervised HAProxy.
"""

__version__ = "0.1.0"
