#!/usr/bin/env bash
# Make system programs some tests need available, from Debian's packages:
#   ensure-debian-packages.sh WHAT 'CHECK' PACKAGE...
# CHECK is a shell condition that holds when the programs are there. Where it fails and this runs
# as root with apt-get, the packages are installed; otherwise it says why not, and the tests that
# need them are skipped with that reason (they never download anything themselves).
set -u
what=$1 check=$2
shift 2
if sh -c "$check" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-debian-packages: $* missing and this is not root with apt-get; $what will be skipped" >&2
  exit 0
fi
echo "ensure-debian-packages: installing Debian's $* for $what" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1; then
  apt-get update -q >/dev/null 2>&1
  apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 ||
    echo "ensure-debian-packages: apt-get could not install $*; $what will be skipped" >&2
fi
exit 0
