#!/usr/bin/env bash
# Installs Debian's Chromium and chromium-driver when they are missing: the admin panel's
# browser test (node/tests/browser_panel.rs) drives them over WebDriver. It fails, saying so,
# when they cannot be had; it is never skipped.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install-browser: chromium and chromium-driver are missing and there is no apt-get;" \
         "install them by hand (the browser test needs them)" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-browser: installing chromium and chromium-driver" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >&2
