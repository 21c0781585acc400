"""The autoscale command's flags: what goes together, one line and exit 2 otherwise;
the stats credentials are the controller's environment variables; LB pods to URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from service_loadbalancer.autoscale.discovery import Workload
from service_loadbalancer.autoscale.options import (
    build_autoscale_parser,
    build_autoscale_settings,
)
from service_loadbalancer.autoscale.rule import Bounds
from service_loadbalancer.autoscale.stats_pages import csv_url, pod_urls
from service_loadbalancer.cli import main
from service_loadbalancer.kube.objects import RawObject
from service_loadbalancer.settings import SettingsError


def settings(*argv: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return build_autoscale_settings(build_autoscale_parser().parse_args(list(argv)), env or {})


def test_defaults() -> None:
    s = settings()
    assert (s.interval, s.scale_down_window, s.lb_selector, s.stats_port) == (
        15.0, 300.0, "app=service-loadbalancer", 1936,
    )  # fmt: skip
    assert s.tier is None and not s.dry_run and s.stats_urls == ()
    assert (s.election_id, s.lease_namespace) == ("service-loadbalancer-autoscale", "default")
    assert s.identity  # the host name without POD_NAME


def test_the_lease_follows_the_controllers_rules() -> None:
    """--election-id names the Lease, in POD_NAMESPACE, held as POD_NAME."""
    s = settings("--election-id", "scaler.example", env={"POD_NAME": "as-1", "POD_NAMESPACE": "lb"})
    assert (s.election_id, s.lease_namespace, s.identity) == ("scaler.example", "lb", "as-1")


def test_tier_and_credentials(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    s = settings(
        "--lb-workload", "lb/deployment/slb", "--lb-target-connections", "500",
        "--lb-min", "2", "--lb-max", "6", "--stats-url", "http://127.0.0.1:1936/",
        env={"SLB_STATS_USER": "admin", "SLB_STATS_PASSWORD_FILE": str(secret)},
    )  # fmt: skip
    assert s.tier is not None
    assert s.tier.workload == Workload("Deployment", "lb", "slb")
    assert (s.tier.metric, s.tier.target, s.tier.bounds) == ("connections", 500.0, Bounds(2, 6))
    assert (s.stats_user, s.stats_password) == ("admin", "s3cret")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lb-workload", "lb/deployment/slb"], "needs one of"),
        (["--lb-target-rps", "5"], "need --lb-workload"),
        (
            [
                "--lb-workload",
                "a/deployment/b",
                "--lb-target-rps",
                "5",
                "--lb-min",
                "4",
                "--lb-max",
                "2",
            ],
            "is above",
        ),
        (["--lb-workload", "a/statefulset/b", "--lb-target-rps", "5"], "Deployment or a DaemonSet"),
    ],
)
def test_flags_that_do_not_go_together(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings(*argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["--interval", "0"],
        ["--interval", "nan"],
        ["--scale-down-stabilization", "-1"],
        ["--stats-url", "ftp://x"],
        ["--lb-workload", "nope"],
        ["--lb-max", "0"],
        ["--lb-target-rps", "0", "--lb-workload", "a/deployment/b"],
        ["--no-such-flag"],
        ["--bind-address", "nope"],
        ["--lb-workload", "a/deployment/b"],
        ["--election-id", "Not_A_Lease"],
        ["--election-id", ""],
        ["--election-id", "x" * 254],
    ],
)
def test_a_wrong_flag_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["autoscale", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("service-loadbalancer autoscale: ")


def test_stats_urls() -> None:
    assert csv_url("http://10.0.0.1:1936/") == "http://10.0.0.1:1936/;csv"
    assert csv_url("http://10.0.0.1:1936") == "http://10.0.0.1:1936/;csv"
    assert csv_url("http://10.0.0.1:1936/;csv") == "http://10.0.0.1:1936/;csv"


def pod(name: str, ip: str | None, *, ready: bool = True, phase: str = "Running") -> RawObject:
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    status: RawObject = {"phase": phase, "conditions": [condition]}
    if ip:
        status["podIP"] = ip
    return {"metadata": {"name": name, "namespace": "lb"}, "status": status}


def test_ready_lb_pods_become_stats_urls() -> None:
    pods = [
        pod("a", "10.0.0.1"),
        pod("b", "10.0.0.2", ready=False),
        pod("c", None),
        pod("d", "fd00::4"),
        pod("e", "10.0.0.5", phase="Pending"),
    ]
    assert pod_urls(pods, 1936) == {
        "lb/a": "http://10.0.0.1:1936/",
        "lb/d": "http://[fd00::4]:1936/",
    }


def test_no_cluster_configuration_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["autoscale", "--stats-url", "http://127.0.0.1:9/"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("service-loadbalancer autoscale: needs a Kubernetes configuration")
