#!/usr/bin/env bash
# Chromium for the web UI tests (tests/web), following reference/ci-recipes.md: Debian's package,
# driven by the playwright Python package from the dev extra. Never `playwright install`: it
# downloads a browser, which this network refuses. Idempotent; a second run takes no time.

_cb_chromium_setup() (
    set -euo pipefail
    if command -v chromium >/dev/null && test -x /usr/bin/chromium; then
        exit 0
    fi
    started=$SECONDS
    echo "chromium-setup: installing chromium" >&2
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
            chromium >/dev/null
    }
    apt_install || { apt-get -o DPkg::Lock::Timeout=300 update -qq && apt_install; }
    /usr/bin/chromium --version >&2
    echo "chromium-setup: done in $((SECONDS - started)) s" >&2
)
_cb_chromium_setup
