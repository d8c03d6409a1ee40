#!/usr/bin/env bash
# OpenLDAP's slapd and the ldap-utils tools (ldapadd, ldapmodify) for the LDAP tests
# (tests/support/slapd.py starts its own slapd on a free port; the package's own service is
# never used). Debian's packages; idempotent, a second run takes no time.

_cb_slapd_setup() (
    set -euo pipefail
    if test -x /usr/sbin/slapd && command -v ldapadd >/dev/null; then
        exit 0
    fi
    started=$SECONDS
    echo "slapd-setup: installing slapd ldap-utils" >&2
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
            slapd ldap-utils >/dev/null
    }
    apt_install || { apt-get -o DPkg::Lock::Timeout=300 update -qq && apt_install; }
    /usr/sbin/slapd -VV 2>&1 | head -1 >&2
    echo "slapd-setup: done in $((SECONDS - started)) s" >&2
)
_cb_slapd_setup
