#!/bin/bash
# maskgate: install the OS packages the gate takes from Raspberry Pi OS rather than from PyPI:
# python3-picamera2 (with libcamera and its Python bindings; not on Raspberry Pi OS Lite) and
# python3-lgpio (gpiozero's pin backend, where PyPI has no wheel for the OS's Python).
# Run by maskgate-os-packages.service once the network is up; safe to run again.
set -euo pipefail

STAMP=/var/lib/maskgate-os-packages.done
declare -A MODULES=([picamera2]=python3-picamera2 [lgpio]=python3-lgpio)

# What the gate sees: its venv (which includes the OS's packages) once first boot has made it.
python=/usr/bin/python3
if [ -x /opt/maskgate/venv/bin/python ]; then
    python=/opt/maskgate/venv/bin/python
fi

missing=()
for module in picamera2 lgpio; do
    if ! "$python" -c "import $module" >/dev/null 2>&1; then
        missing+=("${MODULES[$module]}")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
    echo "maskgate-os-packages: installed ${missing[*]}"
    # The gate may have been restarting without a camera; give it a fresh start now.
    if [ -d /run/systemd/system ]; then
        systemctl try-restart --no-block maskgate.service || true
    fi
else
    echo "maskgate-os-packages: picamera2 and lgpio are already installed"
fi
touch "$STAMP"
