"""Flags to options: what the Kubernetes source is asked to read, and where the
HAProxy config goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from service_loadbalancer.cli import build_parser, kube_options, main
from service_loadbalancer.config import build_settings


@pytest.mark.parametrize(
    ("argv", "kinds"),
    [
        ([], ("Service", "EndpointSlice", "Ingress", "IngressClass")),
        (["--tls-secrets"], ("Service", "EndpointSlice", "Ingress", "IngressClass", "Secret")),
        (["--tls-secrets=false"], ("Service", "EndpointSlice", "Ingress", "IngressClass")),
    ],
)
def test_secrets_are_watched_only_with_tls_secrets(argv: list[str], kinds: tuple[str, ...]) -> None:
    assert kube_options(build_parser().parse_args(argv)).kinds == kinds


@pytest.mark.parametrize(
    ("argv", "cfg", "expected"),
    [
        ([], "", "/var/run/service-loadbalancer/haproxy.cfg"),
        (["--run-dir", "{tmp}/flag"], "", "{tmp}/flag/haproxy.cfg"),
        ([], "runDir: {tmp}/file\n", "{tmp}/file/haproxy.cfg"),
        (["--run-dir", "{tmp}/flag"], "runDir: {tmp}/file\n", "{tmp}/flag/haproxy.cfg"),
        (["--run-dir", "{tmp}/flag"], "config: {tmp}/etc/lb.cfg\n", "{tmp}/etc/lb.cfg"),
    ],
    ids=["default", "run-dir-flag", "run-dir-cfg", "flag-beats-cfg", "config-key"],
)
def test_config_path(tmp_path: Path, argv: list[str], cfg: str, expected: str) -> None:
    """The README: the config goes to `<run-dir>/haproxy.cfg` unless --cfg says."""
    args = [a.format(tmp=tmp_path) for a in argv]
    if cfg:
        (tmp_path / "lb.yaml").write_text(cfg.format(tmp=tmp_path), encoding="utf-8")
        args += ["--cfg", str(tmp_path / "lb.yaml")]
    settings = build_settings(build_parser().parse_args(args), {})
    assert settings.config_path == Path(expected.format(tmp=tmp_path))


def test_trusted_proxies_flag(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--trusted-proxies", "10.0.0.0/8,::1"])
    assert build_settings(args, {}).trusted_proxies == ("10.0.0.0/8", "::1/128")
    assert build_settings(build_parser().parse_args([]), {}).trusted_proxies == ()


def test_bad_trusted_proxy_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["render", "--trusted-proxies", "10.0.0.0/8,10.1.2.3/8"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--trusted-proxies: '10.1.2.3/8' is not a CIDR (host bits set)" in err


@pytest.mark.parametrize(
    ("argv", "cfg", "tunnel", "hard_stop"),
    [
        ([], "", 3_600_000, None),
        (["--timeout-tunnel", "90s"], "", 90_000, None),
        ([], "timeoutTunnel: 2h\nhardStopAfter: 30m\n", 7_200_000, 1_800_000),
        (
            ["--timeout-tunnel", "5m", "--hard-stop-after", "168h"],
            "timeoutTunnel: 2h\n",
            300_000,
            604_800_000,
        ),
    ],
    ids=["default", "flag", "cfg", "flag-beats-cfg"],
)
def test_tunnel_and_hard_stop_times(
    tmp_path: Path, argv: list[str], cfg: str, tunnel: int, hard_stop: int | None
) -> None:
    args = list(argv)
    if cfg:
        (tmp_path / "lb.yaml").write_text(cfg, encoding="utf-8")
        args += ["--cfg", str(tmp_path / "lb.yaml")]
    settings = build_settings(build_parser().parse_args(args), {})
    assert (settings.timeout_tunnel_ms, settings.hard_stop_after_ms) == (tunnel, hard_stop)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--timeout-tunnel", "1 h"], "timeout tunnel: '1 h' is not a time"),
        (["--timeout-tunnel", "500ms"], "timeout tunnel: '500ms' is not between 1s and 168h"),
        (["--hard-stop-after", "169h"], "hard-stop-after: '169h' is not between 1s and 168h"),
        (["--hard-stop-after", "10"], "hard-stop-after: '10' is not a time"),
    ],
)
def test_bad_tunnel_or_hard_stop_time_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["render", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_run_dir_that_cannot_be_written_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--manifests", str(tmp_path), "--run-dir", str(blocker / "run")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "--run-dir" in err and "cannot write there" in err
    assert "Traceback" not in err
