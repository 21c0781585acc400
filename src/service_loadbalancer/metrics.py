"""The controller's own Prometheus metrics, in a registry of their own (no global state).

HAProxy's traffic metrics are its own exporter's (stats port, /metrics); these say how
the controller is doing: reloads and why, restarts, failed validations, problems, sync times.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reloads = Counter(
            "slb_haproxy_reloads",
            "HAProxy starts and reloads the controller applied, by reason kind "
            "(restarts after HAProxy died: slb_haproxy_restarts).",
            ["reason"],
            registry=self.registry,
        )
        self.haproxy_restarts = Counter(
            "slb_haproxy_restarts",
            "Times the HAProxy master died unexpectedly and was started again "
            "(on the last good config).",
            registry=self.registry,
        )
        self.validation_failures = Counter(
            "slb_config_validation_failures",
            "Rendered configs that haproxy -c refused (the last good one kept serving).",
            registry=self.registry,
        )
        self.problems = Gauge(
            "slb_problems",
            "Objects, files or flags currently skipped with a problem.",
            registry=self.registry,
        )
        self.syncs = Counter(
            "slb_syncs",
            "Sync runs (translate + render), whether or not they changed anything.",
            registry=self.registry,
        )
        self.last_sync = Gauge(
            "slb_last_successful_sync_timestamp_seconds",
            "When HAProxy last ran the desired config (Unix time).",
            registry=self.registry,
        )
        self.sync_seconds = Histogram(
            "slb_sync_duration_seconds",
            "Time from the first change of a batch to HAProxy running it.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.runtime_ops = Counter(
            "slb_haproxy_runtime_operations",
            "Server changes applied through the Runtime API, without a reload, by kind "
            "(add, ready, drain, delete).",
            ["op"],
            registry=self.registry,
        )
        self.runtime_fallbacks = Counter(
            "slb_haproxy_runtime_fallbacks",
            "Runtime API batches that failed or left HAProxy in another state than planned, "
            "so a reload applied the change instead.",
            registry=self.registry,
        )
        self.apply_seconds = Histogram(
            "slb_event_to_applied_seconds",
            "Time from a source event (the first of a batch) to HAProxy serving the change, "
            "by how it was applied (runtime or reload).",
            ["method"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.ejections = Counter(
            "slb_server_ejections",
            "Servers HAProxy took out of rotation (marked DOWN by passive health or its "
            "check), by backend; read from HAProxy's own messages.",
            ["backend"],
            registry=self.registry,
        )
        self.forced_up = Counter(
            "slb_backend_all_down_forced_up",
            "Times every server of a backend was DOWN and the controller forced them back "
            "up, so requests keep trying them, by backend.",
            ["backend"],
            registry=self.registry,
        )
        self.watch_restarts = Counter(
            "slb_source_watch_restarts",
            "Times a source had to restart its watch (for example after a 410 Gone).",
            ["source"],
            registry=self.registry,
        )
        self.config_reload_failures = Counter(
            "slb_config_reload_failures",
            "Edits of the --cfg file (or the files it names) that could not be applied: "
            "unreadable, invalid, or refused when rendered; the last good settings kept serving.",
            registry=self.registry,
        )
        self.leader = Gauge(
            "slb_leader",
            "1 while this replica holds the Lease that elects the status writer, else 0.",
            registry=self.registry,
        )
        self.status_writes = Counter(
            "slb_status_writes",
            "Writes of load-balancer status (status.loadBalancer) by result "
            "(written, unchanged, gone, not-leader, failed).",
            ["result"],
            registry=self.registry,
        )
        self.config_restart_needed = Gauge(
            "slb_config_restart_needed",
            "Keys of the --cfg file whose edited values only a restart applies.",
            registry=self.registry,
        )
        # Per-Service load (service_load.py), read from HAProxy when /metrics is scraped.
        self.service_rate = Gauge(
            "slb_service_requests_per_second",
            "Requests a second to the Service (connections a second on TCP ports) through "
            "this load balancer, since the previous scrape.",
            ["namespace", "service"],
            registry=self.registry,
        )
        self.service_in_flight = Gauge(
            "slb_service_requests_in_flight",
            "Requests to the Service being served now by this load balancer (HAProxy's scur).",
            ["namespace", "service"],
            registry=self.registry,
        )
        self.service_queued = Gauge(
            "slb_service_requests_queued",
            "Requests to the Service waiting in this load balancer for a free pod (qcur).",
            ["namespace", "service"],
            registry=self.registry,
        )
        # Remote clusters (--remote-cluster): their state never fails /healthz, so it
        # is shown here, labelled by cluster.
        self.remote_up = Gauge(
            "slb_remote_cluster_up",
            "1 while a remote cluster has been listed and its API answers, else 0.",
            ["cluster"],
            registry=self.registry,
        )
        self.remote_unreachable = Gauge(
            "slb_remote_cluster_unreachable_seconds",
            "How long a remote cluster's API has been failing (0 while it answers).",
            ["cluster"],
            registry=self.registry,
        )
        self.remote_expired = Gauge(
            "slb_remote_cluster_endpoints_removed",
            "1 while a remote cluster's endpoints are removed for having been unreachable "
            "longer than --remote-stale-after, else 0.",
            ["cluster"],
            registry=self.registry,
        )
        self.remote_watch_restarts = Counter(
            "slb_remote_cluster_watch_restarts",
            "Times a remote cluster's source had to list or watch again, by action "
            "(relist, retry, forbidden).",
            ["cluster", "action"],
            registry=self.registry,
        )
