"""The Starlette application: routes split by domain, errors mapped in one place."""
