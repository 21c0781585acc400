#!/usr/bin/env bash
# Builds the image (deploy/Dockerfile) as `make image` does, on a machine that may have no
# container engine yet and may reach no container registry.
#
#   1. The engine: podman, or docker where a Docker daemon answers; else podman, runc and
#      debootstrap are installed with apt. podman runs with deploy/image/containers.conf
#      (runc, no ulimits of its own), so /etc/containers is left alone.
#   2. The base: BASE (python:3.11-slim-bookworm) if it can be pulled (tried once a day
#      at most while the debootstrap base is there); else the same Debian bookworm made
#      with debootstrap from the machine's Debian mirror, with haproxy, tini and
#      libcap2-bin already in, so that the build needs no network at all. The root file
#      system is kept as build/image/base.tar.
#   3. The wheels of the package and of its dependencies, got on the host with PYTHON's
#      pip (whose index the build cannot reach): the package's (pure Python) made, the
#      dependencies' downloaded for the base's Python, machine and glibc, whatever the
#      host's Python. Kept in build/image/context/wheels: the dependencies are got again
#      only when pyproject.toml or the base changes.
#   4. podman build; the image's name and size are printed.
#
# Environment: IMAGE (service-loadbalancer:dev), BASE, PYTHON (python3: a Python with pip,
# any version), BUILD_DIR (build/image), DEBIAN_MIRROR (default: the first bookworm source
# of apt's lists; `build.sh --print-mirror SUITE` prints what is found). Exit status 77:
# no container runtime can run a container on this machine (the smoke test is then
# skipped, with the reason printed here).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGE=${IMAGE:-service-loadbalancer:dev}
BASE=${BASE:-python:3.11-slim-bookworm}
LOCAL_BASE=localhost/service-loadbalancer-base:bookworm
VENV_CACHE=localhost/service-loadbalancer-venv:cache
BUILD=${BUILD_DIR:-$ROOT/build/image}
PYTHON=${PYTHON:-python3}
NO_RUNTIME=77
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/deploy/image/containers.conf}
export PATH=$PATH:/usr/sbin:/sbin
export DEBIAN_FRONTEND=noninteractive

say() { echo "image: $*" >&2; }
no_runtime() {
    say "no container runtime can run a container on this machine: $*"
    exit "$NO_RUNTIME"
}

# ------------------------------------------------------------------------ apt's mirror
# The Debian mirror for a suite (bookworm, bookworm-security), from apt's lists, as a URL
# that debootstrap and the base's own apt can use: the first http(s) URI of an enabled
# `deb` source for the suite, in apt's order (sources.list, then sources.list.d/*.list and
# *.sources by name; one-line and deb822 styles). A `mirror+file:` URI (Debian's cloud
# images: mirror+file:///etc/apt/mirrors/debian.list) stands for the first http(s) URL of
# the file it names; any other URI (mirror+http, cdrom, file...) is passed over. A Debian
# host of another release (trixie) lists no bookworm source but its mirror serves
# bookworm: its own suite (trixie, trixie-security) is looked up next. Else $2.
# APT_DIR (/etc/apt) and OS_RELEASE (/etc/os-release) are for the tests.
APT_DIR=${APT_DIR:-/etc/apt}
OS_RELEASE=${OS_RELEASE:-/etc/os-release}
apt_uris() {  # every URI of an enabled deb source for suite $1, in apt's order
    local files=() file
    [ -f "$APT_DIR/sources.list" ] && files+=("$APT_DIR/sources.list")
    for file in "$APT_DIR"/sources.list.d/*; do
        case $file in *.list | *.sources) [ -f "$file" ] && files+=("$file") ;; esac
    done
    [ "${#files[@]}" -gt 0 ] || return 0
    awk -v suite="$1" '
        function has(list, word,   n, a, i) {
            n = split(list, a, /[ \t]+/)
            for (i = 1; i <= n; i++) if (a[i] == word) return 1
            return 0
        }
        function flush(   n, a, i) {  # the deb822 stanza read so far
            if (has(f["types"], "deb") && tolower(f["enabled"]) != "no" \
                && has(f["suites"], suite)) {
                n = split(f["uris"], a, /[ \t]+/)
                for (i = 1; i <= n; i++) if (a[i] != "") print a[i]
            }
            delete f
            field = ""
        }
        FNR == 1 { flush() }
        FILENAME ~ /\.sources$/ {
            if ($0 ~ /^[ \t]*#/) next
            if ($0 ~ /^[ \t]*$/) { flush(); next }
            if ($0 ~ /^[ \t]/) { if (field != "") f[field] = f[field] " " $0; next }
            field = tolower(substr($0, 1, index($0, ":") - 1))
            f[field] = substr($0, index($0, ":") + 1)
            gsub(/^[ \t]+|[ \t]+$/, "", f[field])
            next
        }
        {   # one-line style: deb [ options ] URI suite components
            sub(/#.*/, "")
            if ($1 != "deb") next
            i = 2
            if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite) print $i
        }
        END { flush() }' "${files[@]}"
}
mirror_url() {  # the first usable http(s) URL of the URIs on stdin
    local uri path url
    while read -r uri; do
        case $uri in
            http://* | https://*) echo "$uri"; return 0 ;;
            mirror+file:*)
                path=${uri#mirror+file:}
                path=${path#//}
                url=$(awk '!/^[ \t]*#/ && $1 ~ /^https?:\/\// { print $1; exit }' "$path" \
                    2>/dev/null) || true
                [ -n "$url" ] && { echo "$url"; return 0; }
                ;;
        esac
    done
    return 1
}
apt_source() {
    local suite=$1 release="" id="" codename=""
    mirror_url <<<"$(apt_uris "$suite")" && return 0
    if [ -r "$OS_RELEASE" ]; then
        id=$(. "$OS_RELEASE" && echo "${ID:-}")
        codename=$(. "$OS_RELEASE" && echo "${VERSION_CODENAME:-}")
    fi
    if [ "$id" = debian ] && [ -n "$codename" ]; then
        release=${suite%%-*}
        if [ "$release" != "$codename" ]; then
            mirror_url <<<"$(apt_uris "$codename${suite#"$release"}")" && return 0
        fi
    fi
    echo "$2"
}
debian_fallback() {  # deb.debian.org's URL for a suite
    case $1 in
        *-security) echo http://deb.debian.org/debian-security ;;
        *) echo http://deb.debian.org/debian ;;
    esac
}
if [ "${1:-}" = --print-mirror ]; then  # for the tests: build.sh --print-mirror SUITE
    [ $# = 2 ] || { echo "usage: $0 --print-mirror SUITE" >&2; exit 2; }
    apt_source "$2" "$(debian_fallback "$2")"
    exit 0
fi


mkdir -p "$BUILD"
# One build at a time on the machine, whatever its checkout: builds share the engine's
# storage, the local base and the venv stage's cache tag. /var/lock (or /tmp) is open to
# every user, and flock needs only a read descriptor, so a lock file another user made
# serves too (opened without O_CREAT, which a sticky directory refuses on another's file).
LOCK_DIR=/var/lock
[ -d "$LOCK_DIR" ] && [ -w "$LOCK_DIR" ] || LOCK_DIR=/tmp
LOCK=$LOCK_DIR/service-loadbalancer-image.lock
[ -e "$LOCK" ] || (umask 0 && : >>"$LOCK")
exec 9<"$LOCK"
if ! flock -n 9; then
    say "waiting for another image build on this machine ($LOCK)"
    flock 9
fi

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    say "installing $* with apt"
    if [ "$apt_updated" = 0 ]; then apt-get update -qq >/dev/null && apt_updated=1; fi
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        2> >(grep -v "delaying package configuration" >&2)
}

# ------------------------------------------------------------------------------ engine
if command -v podman >/dev/null 2>&1; then
    ENGINE=podman
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    ENGINE=docker
elif apt_install podman runc; then
    ENGINE=podman
else
    no_runtime "neither podman nor a Docker daemon, and podman could not be installed with apt"
fi
if [ "$ENGINE" = podman ] && ! command -v runc >/dev/null 2>&1; then
    apt_install runc || no_runtime "runc could not be installed with apt"
fi
engine() { "$ENGINE" "$@"; }
if ! engine info >"$BUILD/info.log" 2>&1; then
    no_runtime "$ENGINE info failed: $(tail -3 "$BUILD/info.log" | tr '\n' ' ')"
fi

# -------------------------------------------------------------------------------- base
# Debian's minimal variant, brought up to date from bookworm-updates and bookworm-security
# (debootstrap reads one suite only), then trimmed as Debian's slim images are (no
# documentation, man pages or translations; dpkg is told to leave them out of later
# installs too), and of the parts of Python and glibc that nothing here runs: the stdlib's
# tests, lib2to3 and pydoc's data, and iconv's character-set modules (Python has its own
# codecs). The host's name service files are used while apt runs, and not kept.
make_rootfs() {
    local rootfs=$BUILD/rootfs mirror security check_valid check_date
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || apt_install debian-archive-keyring
    mirror=${DEBIAN_MIRROR:-$(apt_source bookworm "$(debian_fallback bookworm)")}
    security=$(apt_source bookworm-security "$(debian_fallback bookworm-security)")
    say "making the base with debootstrap from $mirror (about a minute)"
    rm -rf "$rootfs"
    if ! debootstrap --variant=minbase \
        --include=python3,python3-venv,ca-certificates,haproxy,tini,libcap2-bin \
        bookworm "$rootfs" "$mirror" >"$BUILD/debootstrap.log" 2>&1; then
        tail -20 "$BUILD/debootstrap.log" >&2
        say "debootstrap failed (log: $BUILD/debootstrap.log)"
        exit 1
    fi
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
        "$mirror" "$mirror" "$security" >"$rootfs/etc/apt/sources.list"
    cp /etc/hosts /etc/resolv.conf "$rootfs/etc/"
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"  # start no service
    chmod +x "$rootfs/usr/sbin/policy-rc.d"
    # A mirror that serves a snapshot has expired Release files: do as the host's apt does.
    eval "$(apt-config shell check_valid Acquire::Check-Valid-Until check_date Acquire::Check-Date)"
    if ! chroot "$rootfs" apt-get -q \
        -o Acquire::Check-Valid-Until="${check_valid:-true}" \
        -o Acquire::Check-Date="${check_date:-true}" update >>"$BUILD/debootstrap.log" 2>&1 \
        || ! chroot "$rootfs" apt-get -q -y upgrade >>"$BUILD/debootstrap.log" 2>&1; then
        tail -20 "$BUILD/debootstrap.log" >&2
        say "updating the base from bookworm-updates and bookworm-security failed"
        exit 1
    fi
    rm -f "$rootfs/usr/sbin/policy-rc.d"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$rootfs/etc/hosts"
    : >"$rootfs/etc/resolv.conf"
    (
        cd "$rootfs"
        rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* var/log/*
        find usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
        find usr/share/doc -mindepth 1 -depth -type d -empty -delete
        rm -rf usr/share/man usr/share/info usr/share/groff usr/share/lintian usr/share/linda
        find usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
        rm -rf usr/lib/python3.*/test usr/lib/python3.*/lib2to3 usr/lib/python3.*/pydoc_data
        rm -rf usr/lib/x86_64-linux-gnu/gconv usr/lib/aarch64-linux-gnu/gconv
        cat >etc/dpkg/dpkg.cfg.d/slim <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
EOF
    )
    tar -C "$rootfs" --numeric-owner -cf "$BUILD/base.tar.part" .
    mv "$BUILD/base.tar.part" "$BUILD/base.tar"
    rm -rf "$rootfs"
}

# Pulling BASE: where the debootstrap base is already made, a registry that does not
# answer must not hold every build up. A failed pull is then tried again only after a day
# (build/image/pull.failed names BASE; remove it to try sooner), and with 30 s, not 300 s.
network=host  # the Dockerfile's apt step, on a base that lacks haproxy or tini
base_ref=""
if engine image exists "$BASE" >/dev/null 2>&1 \
    || engine image inspect "$BASE" >/dev/null 2>&1; then
    base_ref=$BASE
else
    pull_timeout=300 why=""
    if engine image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
        pull_timeout=30
        if [ -n "$(find "$BUILD/pull.failed" -mmin -1440 2>/dev/null)" ] \
            && [ "$(cat "$BUILD/pull.failed")" = "$BASE" ]; then
            why="the last try failed at $(date -r "$BUILD/pull.failed" '+%F %R');"
            why="$why the next is a day later"
        fi
    fi
    if [ -z "$why" ]; then
        if timeout "$pull_timeout" "$ENGINE" pull -q "$BASE" >"$BUILD/pull.log" 2>&1; then
            base_ref=$BASE
            rm -f "$BUILD/pull.failed"
        else
            [ $? = 124 ] && why="no answer in $pull_timeout s" \
                || why=$(tail -1 "$BUILD/pull.log")
            echo "$BASE" >"$BUILD/pull.failed"
        fi
    fi
fi
if [ -z "$base_ref" ]; then
    say "cannot pull $BASE ($why): using Debian bookworm from debootstrap"
    if ! engine image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
        [ -s "$BUILD/base.tar" ] || make_rootfs
        engine import "$BUILD/base.tar" "$LOCAL_BASE" >"$BUILD/import.log" 2>&1 \
            || { cat "$BUILD/import.log" >&2; exit 1; }
    fi
    base_ref=$LOCAL_BASE
    network=none  # haproxy and tini are in: the build needs no network
fi

# Can this machine run a container at all? (gVisor, nested sandboxes, missing cgroups...)
# The base's Python version, machine and glibc version: what its wheels must be made for.
if ! probe=$(engine run --rm --network none --entrypoint python3 "$base_ref" -c \
    'import os, platform, sys; print("%d.%d" % sys.version_info[:2], platform.machine(),
     os.confstr("CS_GNU_LIBC_VERSION").split()[-1])' 2>"$BUILD/probe.log"); then
    no_runtime "$ENGINE run failed: $(tail -3 "$BUILD/probe.log" | tr '\n' ' ')"
fi
read -r base_python base_arch base_glibc <<<"$probe"

# ------------------------------------------------------------------------------ wheels
# The package's own wheel is pure Python: the host's pip makes it, whatever its Python.
# The dependencies' wheels are downloaded for the base's Python, machine and glibc (the
# manylinux tags it accepts), not the host's: the host may run another Python (Debian 13,
# Ubuntu 24.04). Only where some dependency has no such wheel (an sdist only) are they
# built by the host's pip, which is right only when the host is the base's Python and
# machine.
host_python=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
source=$BUILD/source wheels=$BUILD/context/wheels
rm -rf "$source" "$wheels/app" && mkdir -p "$source" "$wheels/deps" "$wheels/app"
cp -r "$ROOT/pyproject.toml" "$ROOT/README.md" "$ROOT/src" "$source/"
find "$source" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
pip_() {
    # The host's pip configuration may name extra indexes that do not exist on every
    # machine: pip's warnings about them are noise here. SOURCE_DATE_EPOCH makes the
    # package's wheel the same bytes for the same sources, so the build cache holds.
    SOURCE_DATE_EPOCH=315532800 "$PYTHON" -m pip "$@" >"$BUILD/pip.log" 2>&1 && return 0
    grep -v "is ignored: it is neither a file nor a directory" "$BUILD/pip.log" \
        >"$BUILD/pip.err"
    return 1
}
pip_ wheel --no-deps --wheel-dir "$wheels/app" "$source" \
    || { tail -20 "$BUILD/pip.err" >&2; say "$PYTHON -m pip wheel failed"; exit 1; }
app_wheel=$(echo "$wheels"/app/service_loadbalancer-*.whl)
key="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
key="$key python$base_python $base_arch glibc$base_glibc"
if [ "$(cat "$BUILD/wheels.key" 2>/dev/null)" != "$key" ]; then
    say "getting the wheels of the dependencies for Python $base_python ($base_arch," \
        "glibc $base_glibc) with $PYTHON's pip"
    rm -rf "$wheels/deps" "$BUILD/wheels.key" && mkdir -p "$wheels/deps"
    platforms=()
    for ((minor = ${base_glibc#*.}; minor >= 5; minor--)); do
        platforms+=(--platform "manylinux_2_${minor}_$base_arch")
    done
    for legacy in manylinux2014 manylinux2010 manylinux1; do  # 2_17, 2_12, 2_5
        platforms+=(--platform "${legacy}_$base_arch")
    done
    if ! pip_ download --only-binary=:all: --python-version "$base_python" \
        --implementation cp --abi "cp${base_python/./}" "${platforms[@]}" \
        --dest "$wheels/deps" "$app_wheel"; then
        missing=$(grep -m1 '^ERROR' "$BUILD/pip.err" || tail -1 "$BUILD/pip.err")
        if [ "$host_python" != "$base_python" ] || [ "$(uname -m)" != "$base_arch" ]; then
            say "no wheel of every dependency for Python $base_python on $base_arch" \
                "($missing), and $PYTHON is Python $host_python on $(uname -m): give" \
                "PYTHON=python$base_python on $base_arch"
            exit 1
        fi
        say "no wheel of every dependency for Python $base_python ($missing): making them" \
            "with $PYTHON's pip"
        rm -rf "$wheels/deps" && mkdir -p "$wheels/deps"
        pip_ wheel --wheel-dir "$wheels/deps" "$app_wheel" \
            || { tail -20 "$BUILD/pip.err" >&2; say "$PYTHON -m pip wheel failed"; exit 1; }
    fi
    rm -f "$wheels"/deps/service_loadbalancer-*.whl
    echo "$key" >"$BUILD/wheels.key"
fi

# ------------------------------------------------------------------------------- build
build() {
    if ! engine build --network "$network" -f "$ROOT/deploy/Dockerfile" \
        --build-arg "BASE=$base_ref" "$@" "$BUILD/context" >"$BUILD/build.log" 2>&1; then
        tail -30 "$BUILD/build.log" >&2
        say "$ENGINE build failed (log: $BUILD/build.log)"
        exit 1
    fi
}
say "building $IMAGE with $ENGINE from $base_ref"
# The images the tags of this build named before it: those it replaces. Only they are
# removed afterwards (with their parent layers that nothing else uses), never the other
# untagged images of the machine (another user's, a concurrent build's).
replaced=()
for ref in "$VENV_CACHE" "$IMAGE"; do
    id=$(engine image inspect --format '{{.Id}}' "$ref" 2>/dev/null) && replaced+=("$id")
done
# The venv stage is tagged so that its layers stay the cache of the next build.
build --target venv -t "$VENV_CACHE"
build -t "$IMAGE"
for id in "${replaced[@]}"; do
    # Still tagged (the same image again, or tagged elsewhere) or used by a container: kept.
    [ "$(engine image inspect --format '{{len .RepoTags}}' "$id" 2>/dev/null)" = 0 ] \
        && engine rmi "$id" >/dev/null 2>&1 || true
done

size=$(engine image inspect --format '{{.Size}}' "$IMAGE")
echo "$IMAGE: $((size / 1000000)) MB ($ENGINE, base $base_ref)"
