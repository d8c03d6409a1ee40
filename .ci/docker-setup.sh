#!/usr/bin/env bash
# Docker for the container tests (tests/docker), following reference/ci-recipes.md:
#   1. install docker.io (engine + the 20.10 client that has BuildKit) and debootstrap;
#   2. start dockerd in $CB_DOCKER_DIR (default /tmp/cb-docker) with no bridge, NAT or forwarding;
#   3. make the base images locally, since no container registry is reachable:
#        local/debian:bookworm-slim   debootstrap minbase + the libraries Python needs, slimmed
#        local/python:3.12-slim       the same plus the machine's pyenv Python 3.12 in /usr/local
# Idempotent and quick on a second run: a running engine and existing images are reused.
#
# Source it (`. .ci/docker-setup.sh`) to get DOCKER_HOST exported; running it works too.
# Never commits or bakes a machine-local CA into an image: builds get CAs through a build secret.

_cb_docker_setup() (
    set -euo pipefail
    D=${CB_DOCKER_DIR:-/tmp/cb-docker}
    SOCK=unix://$D/docker.sock
    DEBIAN_IMAGE=local/debian:bookworm-slim
    PYTHON_IMAGE=local/python:3.12-slim
    # The newest pyenv build of CPython 3.12 on the machine, unless told otherwise.
    PYTHON_SRC=${CB_DOCKER_PYTHON:-$(printf "%s\n" "$HOME"/.pyenv/versions/3.12.* | sort -V | tail -n 1)}
    started=$SECONDS
    say() { echo "docker-setup: $*" >&2; }

    # 1. packages
    # binutils: strip, for the copied Python.
    if ! { command -v dockerd && command -v debootstrap && command -v strip \
        && test -x /usr/bin/docker; } >/dev/null; then
        say "installing docker.io debootstrap binutils"
        # Package scripts must not start a default dockerd (bridge, NAT); policy-rc.d forbids it.
        made_policy=
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            made_policy=1
        fi
        apt_install() {
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
                docker.io debootstrap binutils >/dev/null
        }
        apt_install || { apt-get -o DPkg::Lock::Timeout=300 update -qq && apt_install; }
        [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
    fi

    # 2. engine
    mkdir -p "$D"
    if ! docker -H "$SOCK" info >/dev/null 2>&1; then
        if [ -f "$D/dockerd.pid" ] && kill -0 "$(cat "$D/dockerd.pid")" 2>/dev/null; then
            say "waiting for the running dockerd (pid $(cat "$D/dockerd.pid"))"
        else
            rm -f "$D/dockerd.pid"
            umount "$D/exec/netns/default" 2>/dev/null || true
            say "starting dockerd in $D"
            # setsid: the engine outlives this script and the job that ran it.
            setsid dockerd -H "$SOCK" --data-root "$D/data" --exec-root "$D/exec" \
                --pidfile "$D/dockerd.pid" \
                --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
                >"$D/dockerd.log" 2>&1 </dev/null &
        fi
        deadline=$((SECONDS + 60))
        until docker -H "$SOCK" info >/dev/null 2>&1; do
            if [ $SECONDS -ge $deadline ]; then
                say "dockerd did not answer within 60 s; see $D/dockerd.log"
                tail -n 20 "$D/dockerd.log" >&2 || true
                exit 1
            fi
            sleep 0.2
        done
    fi
    export DOCKER_HOST=$SOCK

    # 3. base images
    # The label says which version of this recipe made an image; a new recipe remakes both.
    RECIPE=2
    have() {
        [ "$(docker image inspect -f '{{ index .Config.Labels "cheeseboard.base-recipe" }}' "$1" 2>/dev/null)" = "$RECIPE" ]
    }
    if have "$DEBIAN_IMAGE" && have "$PYTHON_IMAGE"; then
        say "engine and base images ready ($((SECONDS - started)) s)"
        exit 0
    fi
    if [ ! -x "$PYTHON_SRC/bin/python3.12" ]; then
        say "no CPython 3.12 build found (${PYTHON_SRC:-none under ~/.pyenv/versions}); set CB_DOCKER_PYTHON"
        exit 1
    fi
    ROOTFS=$D/rootfs
    rm -rf "$ROOTFS"
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    say "debootstrap bookworm from ${mirror:=http://deb.debian.org/debian}"
    # The shared libraries the copied CPython's modules link against (no Tk), plus what
    # python:3.12-slim also carries: CA certificates and netbase (/etc/services, /etc/protocols).
    debootstrap --variant=minbase \
        --include=ca-certificates,netbase,libssl3,libsqlite3-0,libffi8,libbz2-1.0,liblzma5,libexpat1,libncursesw6,libreadline8,libuuid1,libnsl2 \
        bookworm "$ROOTFS" "$mirror" >"$D/debootstrap.log" 2>&1 \
        || { tail -n 20 "$D/debootstrap.log" >&2; exit 1; }
    # Slim it as Debian's -slim images are: no docs, man pages, locales or apt caches, now or
    # for packages installed later.
    cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CFG
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        >"$ROOTFS/etc/apt/apt.conf.d/90slim"
    find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/lintian \
        "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
        "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log "$ROOTFS"/var/cache/debconf/*-old
    find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    : >"$ROOTFS/etc/hostname"
    : >"$ROOTFS/etc/resolv.conf"
    tar -C "$ROOTFS" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' --change "LABEL cheeseboard.base-recipe=$RECIPE" \
        - "$DEBIAN_IMAGE" >/dev/null
    say "made $DEBIAN_IMAGE"

    # CPython from pyenv into /usr/local (pyenv's build is relocatable apart from its RUNPATH;
    # ldconfig makes /usr/local/lib/libpython3.12.so found). Without the test suite, Tk, IDLE, the
    # static library and the sandbox's CA-injecting .pth file.
    tar -C "$PYTHON_SRC" \
        --exclude=./include --exclude=./share \
        --exclude=./lib/python3.12/test --exclude='./lib/python3.12/*/tests' \
        --exclude='./lib/python3.12/*/test' \
        --exclude=./lib/python3.12/idlelib --exclude=./lib/python3.12/tkinter \
        --exclude=./lib/python3.12/turtledemo --exclude='./lib/python3.12/config-3.12-*' \
        --exclude='./lib/python3.12/lib-dynload/_test*' --exclude='./lib/python3.12/lib-dynload/_tkinter*' \
        --exclude='./lib/python3.12/lib-dynload/_xxtestfuzz*' --exclude='./lib/python3.12/lib-dynload/_ctypes_test*' \
        --exclude='./lib/python3.12/site-packages/*.pth' \
        --exclude='./bin/idle*' --exclude='./bin/2to3*' \
        -c . | tar -C "$ROOTFS/usr/local" -x
    # pyenv builds keep debug symbols (libpython alone is 30 MB). And like python:3.12-slim, which
    # this stands in for, no bytecode: image sizes measured here then predict the real ones.
    find "$ROOTFS/usr/local/lib" -name '*.so*' -type f -exec strip --strip-unneeded {} +
    find "$ROOTFS/usr/local" -depth -type d -name __pycache__ -exec rm -rf {} +
    chroot "$ROOTFS" /sbin/ldconfig
    chroot "$ROOTFS" /usr/local/bin/python3.12 -B -c 'import ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, readline, venv' \
        || { say "the copied Python is missing a library"; exit 1; }
    tar -C "$ROOTFS" -c . | docker import \
        --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' --change "LABEL cheeseboard.base-recipe=$RECIPE" \
        - "$PYTHON_IMAGE" >/dev/null
    rm -rf "$ROOTFS"
    say "made $PYTHON_IMAGE ($((SECONDS - started)) s)"
)

if _cb_docker_setup; then
    unset -f _cb_docker_setup
    export DOCKER_HOST=unix://${CB_DOCKER_DIR:-/tmp/cb-docker}/docker.sock
else
    unset -f _cb_docker_setup
    echo "docker-setup: failed" >&2
    # `return` when sourced, `exit` when run.
    return 1 2>/dev/null || exit 1
fi
