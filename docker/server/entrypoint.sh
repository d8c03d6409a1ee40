#!/bin/sh
# Entrypoint of the cheeseboard server image.
#
#   IMAGE [serve options]    initialise $CHEESEBOARD_DATADIR on first start, then serve it;
#                            the options go to `cheeseboard-server serve` (--workers 4 ...)
#   IMAGE COMMAND [ARGS]     run COMMAND instead (sh, cheeseboard-server --help, ...)
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

# A mounted /export or /import asks for a migration between major versions, not a server.
for dir in /export /import; do
    if [ -e "$dir" ]; then
        say "$dir is mounted, but ${dir#/} is not available in this version of cheeseboard;" \
            "remove the $dir mount to start the server"
        exit 2
    fi
done

: "${CHEESEBOARD_DATADIR:=/data/server}"
export CHEESEBOARD_DATADIR
datadir=$CHEESEBOARD_DATADIR

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
