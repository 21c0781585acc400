"""Which settings a --cfg edit may change while running, and how an edit is split into
what applies now and what only a restart applies. Pure: livecfg.py reads the file and
logs, the reconciler (settings_updates.py) renders with the result.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from service_loadbalancer.settings import Settings

#: The fields a --cfg edit applies without a restart: they only change what is
#: translated and rendered, so a full sync (and a reload when the text changes) applies
#: them. Every other field needs a restart: ports and the bind address are flags; the
#: run directory and the config path are where the running HAProxy's sockets and files
#: are; the stats credentials reach the HAProxy master through its environment, which a
#: reload keeps. A new field needs a restart until it is added here.
LIVE_FIELDS: frozenset[str] = frozenset(
    {
        "balance_algorithm",
        "syslog",
        "template",
        "error_page",
        "timeout_tunnel_ms",
        "hard_stop_after_ms",
    }
)

#: How a field is named to the user: its --cfg key, else its flag.
FIELD_KEYS: dict[str, str] = {
    "balance_algorithm": "algorithm",
    "syslog": "startSyslog",
    "template": "template",
    "error_page": "--error-page (its content)",
    "haproxy_config": "config",
    "run_dir": "runDir",
    "stats_user": "statsUser",
    "stats_password": "statsPassword",
    "timeout_tunnel_ms": "timeoutTunnel",
    "hard_stop_after_ms": "hardStopAfter",
}


def field_key(name: str) -> str:
    return FIELD_KEYS.get(name, "--" + name.replace("_", "-"))


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """A rebuilt `Settings` compared with the running and the starting ones."""

    #: What to run: the new values of the live fields, the starting values of the rest.
    settings: Settings
    #: Keys (as the user names them) whose new values apply now.
    live: tuple[str, ...]
    #: Keys whose new values differ from those the controller started with, and which
    #: only a restart applies.
    restart: tuple[str, ...]


def diff_settings(*, started: Settings, running: Settings, new: Settings) -> SettingsChange:
    """Split a rebuilt `new` into what applies live (against `running`) and what needs a
    restart (against `started`, so a restart-only edit stays reported until a restart).
    Pure."""
    names = [f.name for f in fields(Settings)]
    live = tuple(
        field_key(n) for n in names if n in LIVE_FIELDS and getattr(running, n) != getattr(new, n)
    )
    restart = tuple(
        field_key(n)
        for n in names
        if n not in LIVE_FIELDS and getattr(started, n) != getattr(new, n)
    )
    settings = replace(started, **{n: getattr(new, n) for n in LIVE_FIELDS})
    return SettingsChange(settings=settings, live=live, restart=restart)
