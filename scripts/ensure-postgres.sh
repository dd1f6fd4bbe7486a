#!/usr/bin/env bash
# Make PostgreSQL's server programs available for the test suite, which starts a throwaway
# cluster of its own on a free loopback port (tests/conftest.py). Installs Debian's
# `postgresql` package where it is missing and this runs as root with apt; otherwise says
# why not, and the PostgreSQL runs of the tests are skipped with that reason.
set -u
if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-postgres: PostgreSQL is not installed and this is not root with apt-get;" \
       "the PostgreSQL runs of the tests will be skipped" >&2
  exit 0
fi
echo "ensure-postgres: installing Debian's postgresql package for the tests" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1; then
  apt-get update -q >/dev/null 2>&1
  apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 ||
    echo "ensure-postgres: apt-get could not install postgresql; the PostgreSQL runs of the tests will be skipped" >&2
fi
exit 0
