"""The autoscaler's Prometheus metrics, in a registry of their own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class AutoscaleMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rounds = Counter(
            "slb_autoscale_rounds",
            "Autoscaling rounds run, by outcome (complete, incomplete: some replica's stats "
            "unread or restarted, skipped: no rate yet).",
            ["outcome"],
            registry=self.registry,
        )
        # The controller's name: one alert rule ("no replica leads") serves both.
        self.leader = Gauge(
            "slb_leader",
            "1 while this replica holds the Lease that elects the autoscaler that reads "
            "stats and writes, else 0 (always 0 with --dry-run, which takes no Lease).",
            registry=self.registry,
        )
        self.scale_writes = Counter(
            "slb_autoscale_scale_writes",
            "Replica counts written through the scale subresource (or printed with "
            "--dry-run), by workload and direction (up, down).",
            ["namespace", "workload", "direction"],
            registry=self.registry,
        )
        self.desired = Gauge(
            "slb_autoscale_desired_replicas",
            "The replicas the rule decided on in the last round, by workload.",
            ["namespace", "workload"],
            registry=self.registry,
        )
        self.observed = Gauge(
            "slb_autoscale_observed_per_pod",
            "The figure per pod the last round saw (requests a second, or in flight), by Service.",
            ["namespace", "service"],
            registry=self.registry,
        )
        self.stats_failures = Counter(
            "slb_autoscale_stats_read_failures",
            "Reads of a load-balancer replica's stats page that failed (skipped for the "
            "round, never taken as zero load).",
            registry=self.registry,
        )
        self.problems = Gauge(
            "slb_autoscale_problems",
            "Annotated Services skipped in the last round (bad annotation, no single "
            "target, targeted by an HPA).",
            registry=self.registry,
        )
        self.lb_recommended = Gauge(
            "slb_autoscale_lb_recommended_replicas",
            "Replicas the rule recommends for the load-balancer tier; for a DaemonSet, the "
            "number of nodes to label role=loadbalancer.",
            registry=self.registry,
        )
