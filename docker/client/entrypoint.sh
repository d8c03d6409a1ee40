#!/bin/sh
# Entrypoint of the cheeseboard client image: log in from the environment, then run the given
# command (default: an interactive shell) in /work, where the files to upload are mounted.
#
#   CHEESEBOARD_URL (or DEVPI_URL)            server, optionally with /user/index
#   CHEESEBOARD_USER (or DEVPI_USER)          user to log in as
#   CHEESEBOARD_PASSWORD (or DEVPI_PASSWORD)  that user's password
#
# `use` and `login` report on stderr, so `cheeseboard --json ...` keeps a clean stdout.
set -eu

say() { printf 'cheeseboard-entrypoint: %s\n' "$*" >&2; }

# The client keeps its state (server, index, token) under $HOME; with `docker run --user` of an
# arbitrary uid there may be no writable home.
if [ -z "${CHEESEBOARD_CLIENTDIR:-}" ] && ! [ -w "${HOME:-/nonexistent}" ]; then
    export CHEESEBOARD_CLIENTDIR=/tmp/cheeseboard-client
fi

url=${CHEESEBOARD_URL:-${DEVPI_URL:-}}
user=${CHEESEBOARD_USER:-${DEVPI_USER:-}}
password=${CHEESEBOARD_PASSWORD:-${DEVPI_PASSWORD:-}}

if [ -n "$url" ]; then
    cheeseboard use "$url" >&2 || { say "cannot use $url"; exit 2; }
fi
if [ -n "$user" ]; then
    if [ -z "$password" ]; then
        say "CHEESEBOARD_USER is set but CHEESEBOARD_PASSWORD is not"
        exit 2
    fi
    # The password stays in the environment, where the client reads it: never on a command line.
    cheeseboard login "$user" >&2 || { say "cannot log in as $user"; exit 2; }
fi

[ "$#" -gt 0 ] || set -- sh
exec "$@"
