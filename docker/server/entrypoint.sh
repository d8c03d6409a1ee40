#!/bin/sh
# Entrypoint of the cheeseboard server image.
#
#   IMAGE [serve options]    initialise $CHEESEBOARD_DATADIR on first start, then serve it;
#                            the options go to `cheeseboard-server serve` (--workers 4 ...)
#   IMAGE COMMAND [ARGS]     run COMMAND instead (sh, cheeseboard-server --help, ...)
#   -v DIR:/export IMAGE     export the store to DIR/cheeseboard-dump-<UTC time>, then exit
#                            (CHEESEBOARD_EXPORT_MIRRORED_FILES=1 adds the mirror cache)
#   -v DIR:/import IMAGE     import the dump in DIR (or its newest dump subdirectory; devpi
#                            exports too) into an empty data volume, then exit
#
# First start: the root password comes from $CHEESEBOARD_ROOT_PASSWORD, docker-devpi's
# $DEVPI_PASSWORD or the file named by $CHEESEBOARD_ROOT_PASSWORD_FILE (Docker secrets), and
# root/pypi mirrors $CHEESEBOARD_MIRROR_URL (default: PyPI). Without a password an uninitialised
# data directory is an error: never a server whose root password nobody chose.
set -eu

say() { printf 'cheeseboard-entrypoint: %s\n' "$*" >&2; }

case "${1:-}" in
    serve) shift ;;
    '' | -*) ;;
    *) exec "$@" ;;
esac
for arg; do
    case $arg in -h | --help) exec cheeseboard-server serve "$@" ;; esac
done

: "${CHEESEBOARD_DATADIR:=/data/server}"
export CHEESEBOARD_DATADIR
datadir=$CHEESEBOARD_DATADIR

# A mounted /export or /import is a one-off job (backup, move, major upgrade), not a server.
if [ -d /export ] && [ -d /import ]; then
    say "both /export and /import are mounted; mount one of them"
    exit 2
fi
if [ -d /export ]; then
    if [ ! -e "$datadir/.cheeseboard" ]; then
        say "/export is mounted but $datadir holds no store to export"
        exit 2
    fi
    # A new dated directory inside the mount: the dump is built beside it and renamed in,
    # which must happen on the mounted file system.
    target=/export/cheeseboard-dump-$(date -u +%Y%m%dT%H%M%SZ)
    set -- export --datadir "$datadir" "$target"
    if [ "${CHEESEBOARD_EXPORT_MIRRORED_FILES:-}" = 1 ]; then
        set -- "$@" --include-mirrored-files
    fi
    say "exporting $datadir to $target"
    exec cheeseboard-server "$@"
fi
if [ -d /import ]; then
    if [ -e "$datadir/.cheeseboard" ]; then
        say "/import is mounted but $datadir holds a store already; import into an empty volume"
        exit 2
    fi
    # /import itself, or the newest dump (cheeseboard or devpi export) directly inside it.
    source=/import
    if [ ! -e /import/cheeseboard-dump.json ] && [ ! -e /import/dataindex.json ]; then
        source=$(ls -d /import/*/cheeseboard-dump.json /import/*/dataindex.json 2>/dev/null \
            | sort | tail -n 1 | xargs -r dirname)
        if [ -z "$source" ]; then
            say "/import holds no dump (cheeseboard-dump.json or devpi's dataindex.json)"
            exit 2
        fi
    fi
    parent=$(dirname "$datadir")
    if [ ! -w "$parent" ]; then
        say "$parent is not writable by uid $(id -u): chown the volume to $(id -u):$(id -g)"
        exit 2
    fi
    say "importing $source into $datadir"
    exec cheeseboard-server import --datadir "$datadir" "$source"
fi

# `cheeseboard-server init` writes the .cheeseboard marker last, then renames the directory in.
# It cannot rename onto a mount point, hence the data directory one level below the volume.
if [ ! -e "$datadir/.cheeseboard" ]; then
    password=${CHEESEBOARD_ROOT_PASSWORD:-${DEVPI_PASSWORD:-}}
    if [ -z "$password" ] && [ -n "${CHEESEBOARD_ROOT_PASSWORD_FILE:-}" ]; then
        password=$(cat "$CHEESEBOARD_ROOT_PASSWORD_FILE")
    fi
    if [ -z "$password" ]; then
        say "$datadir is not initialised and no root password is set: set" \
            "CHEESEBOARD_ROOT_PASSWORD (or DEVPI_PASSWORD, or CHEESEBOARD_ROOT_PASSWORD_FILE)" \
            "for the first start, or mount an initialised data directory"
        exit 2
    fi
    parent=$(dirname "$datadir")
    if [ ! -w "$parent" ]; then
        say "$parent is not writable by uid $(id -u): chown the volume or host directory to" \
            "$(id -u):$(id -g), or run the container with --user set to its owner"
        exit 2
    fi
    say "first start: initialising $datadir"
    CHEESEBOARD_ROOT_PASSWORD=$password cheeseboard-server init
fi

# The password is needed once; the server and its workers do not carry it around.
unset CHEESEBOARD_ROOT_PASSWORD DEVPI_PASSWORD CHEESEBOARD_ROOT_PASSWORD_FILE
# exec: the server is the process `docker stop` signals, so it shuts down at once.
exec cheeseboard-server serve "$@"
