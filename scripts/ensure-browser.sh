#!/usr/bin/env bash
# Make Debian's chromium and chromium-driver available for the console's browser tests
# (tests/web/test_console_browser.py drives them with Selenium; nothing is downloaded at run time).
# Installs them where they are missing and this runs as root with apt; otherwise says why not,
# and those tests are skipped with that reason.
set -u
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-browser: chromium or chromium-driver is missing and this is not root with apt-get;" \
       "the console's browser tests will be skipped" >&2
  exit 0
fi
echo "ensure-browser: installing Debian's chromium and chromium-driver for the console's browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null 2>&1; then
  apt-get update -q >/dev/null 2>&1
  apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null 2>&1 ||
    echo "ensure-browser: apt-get could not install chromium; the console's browser tests will be skipped" >&2
fi
exit 0
