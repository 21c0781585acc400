"""One autoscaling round every --interval seconds: read every load-balancer replica's
stats, turn them into figures, and for every annotated Service (and the tier, with
--lb-workload) apply the rule and write the result through the scale subresource.

Every change is a log line, a metric and an Event on the Service (or the load
balancer's workload) that carries the figures that led to it. Problems (a bad
annotation, no single target, a workload an HPA owns) are logged and recorded as an
Event once, when they appear, and skip that Service only. Nothing here decides anything:
the rule is rule.py's, the targets discovery.py's, the figures figures.py's.

Only the leader works (`may_write`, the Lease election's answer): a replica that does
not lead reads no stats and writes nothing, and the question is asked again right before
every scale and Event write, as the status writer does. Gaining leadership starts afresh,
as a fresh start does: no samples (rates need two reads of our own), no history (so the
current replicas count as the first recommendation and the scale-down window holds a
new leader back), problems reported anew.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import aiohttp

from service_loadbalancer.autoscale.cluster import ApiError, Cluster
from service_loadbalancer.autoscale.discovery import (
    Metric,
    Policy,
    Workload,
    find_target,
    hpa_targets,
    service_policy,
)
from service_loadbalancer.autoscale.figures import Figures, Sample, combine
from service_loadbalancer.autoscale.metrics import AutoscaleMetrics
from service_loadbalancer.autoscale.options import AutoscaleSettings
from service_loadbalancer.autoscale.rule import Bounds, Decision, History, decide
from service_loadbalancer.autoscale.stats_pages import pod_urls, read_all
from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.waits import wait_event

log = logging.getLogger("service_loadbalancer.autoscale")
#: Reading a stats page may take at most this share of the interval.
READ_SHARE = 0.5


def _subject(kind: str, workload: Workload) -> RawObject:
    return {
        "kind": kind,
        "apiVersion": "apps/v1",
        "metadata": {"name": workload.name, "namespace": workload.namespace},
    }


def _name(obj: RawObject) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


@dataclass
class Autoscaler:
    settings: AutoscaleSettings
    cluster: Cluster
    session: aiohttp.ClientSession
    metrics: AutoscaleMetrics
    #: The Services, from the watch-fed store (None until it has listed them).
    services: Callable[[], list[RawObject] | None]
    out: TextIO = field(default_factory=lambda: sys.stdout)
    clock: Callable[[], float] = time.monotonic
    #: True once a round has read figures and listed the Services.
    working: bool = False
    _samples: dict[str, Sample] = field(default_factory=dict)
    _history: dict[Workload, History] = field(default_factory=dict)
    _reported: set[tuple[str, str]] = field(default_factory=set)
    _recommended: int | None = None
    #: Whether we may act as leader now (the Lease election's `is_leader`); asked before
    #: each round and right before each write. Always yes without an election.
    may_write: Callable[[], bool] = field(default=lambda: True)
    #: Whether the last look at `may_write` said we lead.
    leading: bool = False
    #: Whether the next round as leader starts afresh: at first, and after any loss of
    #: leadership, even one between two rounds (another replica may have led meanwhile).
    _afresh: bool = True
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def leadership_changed(self, leader: bool) -> None:
        """The election's news: look now rather than at the end of the interval."""
        if not leader:
            self._afresh = True
        self._wake.set()

    async def run(self) -> None:
        """Rounds every --interval seconds while we lead, until cancelled; a failed
        round is logged."""
        while True:
            started = self.clock()
            self._wake.clear()
            if self.lead():
                try:
                    await self.round()
                except (ApiError, aiohttp.ClientError, TimeoutError, OSError) as err:
                    self.working = False
                    log.warning("autoscaling round failed, retrying next round: %s", err)
            pause = max(0.0, self.settings.interval - (self.clock() - started))
            await wait_event(self._wake, pause)

    def lead(self) -> bool:
        """Whether we lead now; gaining leadership starts afresh (module docstring)."""
        leading = self.may_write()
        if leading and self._afresh:
            self._samples, self._history, self._reported = {}, {}, set()
            self._recommended, self._afresh = None, False
            log.info(
                "leading: autoscaling from fresh figures; no scale-down for %g s "
                "(--scale-down-stabilization)",
                self.settings.scale_down_window,
            )
        elif self.leading and not leading:
            log.info("not the leader: no stats read, nothing written")
        if not leading:
            self.working, self._afresh = False, True
        self.leading = leading
        return leading

    async def round(self) -> None:
        replicas = await self._replicas()
        reads = await read_all(
            self.session,
            replicas,
            user=self.settings.stats_user,
            password=self.settings.stats_password,
            seconds=max(0.2, self.settings.interval * READ_SHARE),
        )
        for replica, result in sorted(reads.items()):
            if isinstance(result, str):
                self.metrics.stats_failures.inc()
                log.warning("load-balancer replica %s skipped this round: %s", replica, result)
        figures, self._samples = combine(self._samples, reads)
        if figures.replicas == 0:
            self.metrics.rounds.labels(outcome="skipped").inc()
            log.info("no rates yet (%s)", "; ".join(figures.notes) or "no replicas")
            return
        outcome = "complete" if figures.complete else "incomplete"
        self.metrics.rounds.labels(outcome=outcome).inc()
        if not figures.complete:
            log.info("figures are a lower bound this round (no scale-down): %s",
                     "; ".join(figures.notes))  # fmt: skip
        await self._services(figures)
        if self.settings.tier is not None:
            await self._tier(figures, len(reads))
        self.working = True

    async def _replicas(self) -> dict[str, str]:
        if self.settings.stats_urls:
            return {url: url for url in self.settings.stats_urls}
        pods = await self.cluster.lb_pods(self.settings.lb_selector)
        return pod_urls(pods, self.settings.stats_port)

    async def _services(self, figures: Figures) -> None:
        services = self.services()
        if services is None:
            log.info("Services not listed yet: no Service scaled this round")
            return
        annotated: list[tuple[RawObject, Policy | str]] = []
        for service in services:
            policy = service_policy(service)
            if policy is not None:
                annotated.append((service, policy))
        workloads: dict[str, list[RawObject] | str] = {}
        hpas: dict[Workload, str] = {}
        for namespace in sorted({_name(s)[0] for s, _ in annotated}):
            try:
                workloads[namespace] = await self.cluster.workloads(namespace)
                hpas.update(hpa_targets(await self.cluster.hpas(namespace)))
            except ApiError as err:  # one namespace's RBAC gap skips that namespace only
                workloads[namespace] = f"cannot read its namespace's workloads: {err}"
        problems: set[tuple[str, str]] = set()
        for service, policy in annotated:
            namespace, name = _name(service)
            found = workloads[namespace]
            if isinstance(found, str):
                log.warning("Service %s/%s skipped this round: %s", namespace, name, found)
                continue
            problem = await self._service(service, policy, found, hpas, figures)
            if problem is not None:
                problems.add((f"{namespace}/{name}", problem))
                await self._problem(service, problem)
        self._reported &= problems
        self.metrics.problems.set(len(problems))

    async def _service(
        self,
        service: RawObject,
        policy: Policy | str,
        workloads: list[RawObject],
        hpas: dict[Workload, str],
        figures: Figures,
    ) -> str | None:
        """Scale one Service's workload; the problem, if it cannot be."""
        if isinstance(policy, str):
            return policy
        target = find_target(service, workloads)
        if isinstance(target, str):
            return target
        if target in hpas:
            return (
                f"{target} is scaled by the HorizontalPodAutoscaler {hpas[target]}: "
                "left alone (two autoscalers on one workload fight)"
            )
        namespace, name = _name(service)
        load = figures.services.get(ObjectKey("Service", namespace, name))
        if load is None:
            # No backend in HAProxy: not served (a problem of its own, or another
            # --namespace), so no figures. Not zero load: nothing is scaled.
            return "the load balancer does not serve it, so it has no figures"
        total = load.rate if policy.metric is Metric.RPS else float(load.concurrency)
        unit = "requests/s" if policy.metric is Metric.RPS else "in flight"
        decision = await self._scale(
            service, workload=target, total=total, target=policy.target,
            bounds=policy.bounds, figures=figures, unit=unit,
        )  # fmt: skip
        if decision is not None and decision.current:
            self.metrics.observed.labels(namespace=namespace, service=name).set(
                total / decision.current
            )
        return None

    async def _scale(
        self,
        subject: RawObject,
        *,
        workload: Workload,
        total: float,
        target: float,
        bounds: Bounds,
        figures: Figures,
        unit: str,
    ) -> Decision | None:
        try:
            current = await self.cluster.replicas(workload)
        except ApiError as err:
            log.warning("cannot read the scale of %s: %s", workload, err)
            return None
        decision = self._decide(
            workload, current=current, total=total, target=target, bounds=bounds,
            complete=figures.complete,
        )  # fmt: skip
        if decision.desired == current:
            return decision
        message = self._message(workload, decision, total, unit, figures)
        direction = "up" if decision.desired > current else "down"
        if self.settings.dry_run:
            print(f"would scale {message}", file=self.out, flush=True)
        elif not self.may_write():
            log.info("not the leader any more: not scaled %s", message)
            return decision
        else:
            try:
                await self.cluster.scale(workload, decision.desired)
            except ApiError as err:
                log.warning("%s", err)
                return decision
            log.info("scaled %s", message)
            await self._event(subject, "Scaled", message)
        self.metrics.scale_writes.labels(
            namespace=workload.namespace, workload=workload.name, direction=direction
        ).inc()
        return decision

    def _decide(
        self,
        workload: Workload,
        *,
        current: int,
        total: float,
        target: float,
        bounds: Bounds,
        complete: bool,
    ) -> Decision:
        decision = decide(
            current=current,
            observed=total / current if current else 0.0,
            target=target,
            bounds=bounds,
            history=self._history.get(workload),
            now=self.clock(),
            window=self.settings.scale_down_window,
            complete=complete,
        )
        self._history[workload] = decision.history
        self.metrics.desired.labels(namespace=workload.namespace, workload=workload.name).set(
            decision.desired
        )
        return decision

    @staticmethod
    def _message(
        workload: Workload, decision: Decision, total: float, unit: str, figures: Figures
    ) -> str:
        seen = f"{total:.4g} {unit} in all, read from {figures.replicas} load-balancer replica(s)"
        if not figures.complete:
            seen += " (a lower bound: " + "; ".join(figures.notes) + ")"
        return (
            f"{workload} from {decision.current} to {decision.desired}: {decision.reason}; {seen}"
        )

    async def _tier(self, figures: Figures, known: int) -> None:
        tier = self.settings.tier
        assert tier is not None
        if tier.metric == "rps":
            total, unit = figures.tier.rate, "requests/s"
        else:
            total, unit = float(figures.tier.in_flight), "connections open"
        if tier.workload.kind != "DaemonSet":
            subject = _subject("Deployment", tier.workload)
            decision = await self._scale(
                subject, workload=tier.workload, total=total, target=tier.target,
                bounds=tier.bounds, figures=figures, unit=unit,
            )  # fmt: skip
            if decision is not None:
                self.metrics.lb_recommended.set(decision.desired)
            return
        # A DaemonSet cannot be scaled: recommend a number of load-balancer nodes.
        decision = self._decide(
            tier.workload, current=known, total=total, target=tier.target,
            bounds=tier.bounds, complete=figures.complete,
        )  # fmt: skip
        self.metrics.lb_recommended.set(decision.desired)
        changed, self._recommended = decision.desired != self._recommended, decision.desired
        if decision.desired != known and changed:
            message = (
                f"{self._message(tier.workload, decision, total, unit, figures)}; label "
                f"{decision.desired} nodes role=loadbalancer (a DaemonSet cannot be scaled)"
            )
            log.info("recommend %s", message)
            if not self.settings.dry_run:
                await self._event(_subject("DaemonSet", tier.workload), "ScaleRecommended",
                                  message)  # fmt: skip

    async def _problem(self, service: RawObject, problem: str) -> None:
        namespace, name = _name(service)
        if (f"{namespace}/{name}", problem) in self._reported:
            return
        self._reported.add((f"{namespace}/{name}", problem))
        log.warning("Service %s/%s not autoscaled: %s", namespace, name, problem)
        if not self.settings.dry_run:
            await self._event(service, "NotAutoscaled", problem, warning=True)

    async def _event(
        self, subject: RawObject, reason: str, message: str, *, warning: bool = False
    ) -> None:
        if not self.may_write():
            log.info("not the leader any more: no %s Event", reason)
            return
        try:
            await self.cluster.event(subject, reason=reason, message=message, warning=warning)
        except (ApiError, aiohttp.ClientError, TimeoutError) as err:
            log.warning("cannot record an Event: %s", err)
