#!/bin/sh
# Image builds only: run the given pip command, trusting an extra CA bundle when the build has the
# secret "ca" (docker build --secret id=ca,src=bundle.pem), for builds behind a TLS-intercepting
# proxy. The bundle is added to the certificates pip trusts anyway, never replaces them, and never
# lands in an image layer: secrets are mounted for one RUN step only.
set -eu
extra=/run/secrets/ca
if [ -s "$extra" ]; then
    bundle=$(mktemp)
    trap 'rm -f "$bundle"' EXIT
    if [ -n "${PIP_CERT:-}" ] && [ -s "$PIP_CERT" ]; then
        cat "$PIP_CERT" >"$bundle"
    else
        cat "$("$1" -c 'from pip._vendor import certifi; print(certifi.where())')" >"$bundle"
    fi
    printf '\n' >>"$bundle"
    cat "$extra" >>"$bundle"
    # pip hands PIP_CERT on to the pip that installs build dependencies (hatchling) too.
    export PIP_CERT="$bundle"
fi
"$@"
