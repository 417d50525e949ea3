#!/bin/bash
# maskgate first boot (run by maskgate-firstboot.service as root).
#
#  1. makes sure the unprivileged `maskgate` user exists (the build normally created it);
#  2. applies this card's settings that `maskgate image flash` left in the boot partition's
#     maskgate/ folder: device.toml, secrets, hostname, Wi-Fi, SSH (keys only, or SSH off).
#     Each item is removed from the boot partition (readable by every local user) once applied;
#  3. creates the venv (--system-site-packages: picamera2 and libcamera come from the OS) and
#     installs maskgate from the offline wheelhouse, with no network;
#  4. writes the installer's page tokens (no default password) unless the card has them;
#  5. checks the gate's config, disables this unit and starts the gate.
#
# Every step can run again: a second run finds the work done and changes nothing.
set -euo pipefail

PREFIX=/opt/maskgate
WHEELHOUSE=$PREFIX/wheelhouse
VENV=$PREFIX/venv
ETC=/etc/maskgate
SECRETS=$ETC/secrets
STATE=/var/lib/maskgate
UNIT=maskgate-firstboot.service
PYTHON=/usr/bin/python3

log() { echo "maskgate-firstboot: $*"; }

systemd_running() { [ -d /run/systemd/system ]; }

# The boot partition is /boot/firmware since Bookworm, /boot before.
settings_dir() {
    local d
    for d in /boot/firmware/maskgate /boot/maskgate; do
        if [ -d "$d" ]; then
            echo "$d"
            return 0
        fi
    done
    return 0
}

ensure_user() {
    if ! getent group maskgate >/dev/null; then
        groupadd --system maskgate
    fi
    if ! getent passwd maskgate >/dev/null; then
        useradd --system --gid maskgate --home-dir /var/lib/maskgate --no-create-home \
            --shell /usr/sbin/nologin --comment "maskgate door gate" maskgate
    fi
    local g
    for g in gpio video; do
        getent group "$g" >/dev/null || groupadd --system "$g"
        id -nG maskgate | tr ' ' '\n' | grep -qx "$g" || usermod -a -G "$g" maskgate
    done
    install -d -m 0750 -o root -g maskgate "$ETC" "$SECRETS"
}

apply_device_config() {
    local src=$1
    if [ -f "$src/device.toml" ]; then
        install -m 0640 -o root -g maskgate "$src/device.toml" "$ETC/device.toml"
        rm -f "$src/device.toml"
        log "installed this card's settings as $ETC/device.toml"
    fi
    if [ -d "$src/secrets" ]; then
        local f
        for f in "$src"/secrets/*; do
            [ -f "$f" ] || continue
            install -m 0640 -o root -g maskgate "$f" "$SECRETS/$(basename "$f")"
            rm -f "$f"
            log "installed secret $SECRETS/$(basename "$f")"
        done
        rmdir "$src/secrets" 2>/dev/null || true
    fi
}

apply_hostname() {
    local src=$1 name
    [ -f "$src/hostname" ] || return 0
    name=$(tr -d ' \t\r\n' <"$src/hostname")
    if [ -n "$name" ]; then
        echo "$name" >/etc/hostname
        if grep -q '^127\.0\.1\.1[[:space:]]' /etc/hosts 2>/dev/null; then
            sed -i "s/^127\.0\.1\.1[[:space:]].*/127.0.1.1\t$name/" /etc/hosts
        else
            printf '127.0.1.1\t%s\n' "$name" >>/etc/hosts
        fi
        if systemd_running; then
            hostnamectl set-hostname "$name" 2>/dev/null || hostname "$name" || true
        fi
        log "hostname set to $name"
    fi
    rm -f "$src/hostname"
}

apply_wifi() {
    local src=$1/wifi cc
    [ -d "$src" ] || return 0
    if [ -f "$src/country" ]; then
        cc=$(tr -d ' \t\r\n' <"$src/country")
        if command -v raspi-config >/dev/null; then
            raspi-config nonint do_wifi_country "$cc" || log "warning: could not set the Wi-Fi country to $cc"
        elif command -v iw >/dev/null; then
            iw reg set "$cc" || true
        fi
        if command -v rfkill >/dev/null; then
            rfkill unblock wifi || true
        fi
        rm -f "$src/country"
        log "Wi-Fi country set to $cc"
    fi
    if [ -f "$src/maskgate-wifi.nmconnection" ]; then
        install -d -m 0700 /etc/NetworkManager/system-connections
        install -m 0600 -o root -g root "$src/maskgate-wifi.nmconnection" \
            /etc/NetworkManager/system-connections/maskgate-wifi.nmconnection
        rm -f "$src/maskgate-wifi.nmconnection"
        if systemd_running && command -v nmcli >/dev/null; then
            nmcli connection reload || true
        fi
        log "Wi-Fi connection installed"
    fi
    rmdir "$src" 2>/dev/null || true
}

enable_ssh() {
    local src=$1/ssh admin home
    admin=$(tr -d ' \t\r\n' <"$src/admin-user")
    if ! getent passwd "$admin" >/dev/null; then
        useradd --create-home --user-group --shell /bin/bash --comment "maskgate administrator" "$admin"
    fi
    # '*' matches no password: this account logs in with its SSH key only.
    usermod -p '*' "$admin"
    if getent group sudo >/dev/null; then
        usermod -a -G sudo "$admin"
    fi
    home=$(getent passwd "$admin" | cut -d: -f6)
    install -d -m 0700 -o "$admin" -g "$(id -gn "$admin")" "$home/.ssh"
    install -m 0600 -o "$admin" -g "$(id -gn "$admin")" "$src/authorized_keys" "$home/.ssh/authorized_keys"
    install -d -m 0755 /etc/sudoers.d
    printf '# maskgate: the administrator has no password (SSH key only), so sudo cannot ask for one.\n%s ALL=(ALL) NOPASSWD: ALL\n' \
        "$admin" >/etc/sudoers.d/010-maskgate-admin
    chmod 0440 /etc/sudoers.d/010-maskgate-admin
    install -d -m 0755 /etc/ssh/sshd_config.d
    printf 'AllowUsers %s\n' "$admin" >/etc/ssh/sshd_config.d/11-maskgate-admin.conf
    # Raspberry Pi OS's first-user wizard leaves a banner telling people to set a password.
    rm -f /etc/ssh/sshd_config.d/rename_user.conf
    if command -v systemctl >/dev/null; then
        systemctl enable ssh.service 2>/dev/null || log "warning: no ssh.service to enable (is openssh-server installed?)"
        if systemd_running; then
            systemctl restart --no-block ssh.service || true
        fi
    fi
    rm -f "$src/authorized_keys" "$src/admin-user"
    log "SSH enabled for $admin (keys only)"
}

disable_ssh() {
    local src=$1/ssh
    if command -v systemctl >/dev/null; then
        systemctl disable ssh.service 2>/dev/null || true
        if systemd_running; then
            systemctl stop --no-block ssh.service 2>/dev/null || true
        fi
    fi
    rm -f "$src/disabled"
    log "SSH disabled"
}

apply_ssh() {
    local src=$1
    [ -d "$src/ssh" ] || return 0
    if [ -f "$src/ssh/authorized_keys" ] && [ -f "$src/ssh/admin-user" ]; then
        enable_ssh "$src"
    elif [ -f "$src/ssh/disabled" ]; then
        disable_ssh "$src"
    fi
    rmdir "$src/ssh" 2>/dev/null || true
}

install_gate() {
    # A venv left half-made by a power cut has no marker: start it over.
    if [ -d "$VENV" ] && [ ! -f "$VENV/.maskgate-venv-complete" ]; then
        rm -rf "$VENV"
    fi
    if [ ! -d "$VENV" ]; then
        log "creating $VENV"
        "$PYTHON" -m venv --system-site-packages "$VENV"
        touch "$VENV/.maskgate-venv-complete"
    fi
    log "installing from $WHEELHOUSE (no network)"
    "$VENV/bin/python" -m pip install --no-index --find-links "$WHEELHOUSE" --only-binary=:all: \
        --no-cache-dir --disable-pip-version-check --no-warn-script-location --quiet \
        -r "$WHEELHOUSE/requirements.txt"
}

make_web_tokens() {
    # The installer's page: one admin and one viewer token, readable by the gate's user only.
    local f=$STATE/web-secret.toml admin viewer
    [ -f "$f" ] && return 0
    install -d -m 0750 -o maskgate -g maskgate "$STATE"
    admin=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(24))')
    viewer=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(24))')
    (umask 077 && printf '# maskgate, the page for installers: log in with one of these tokens\nadmin = "%s"\nviewer = "%s"\n' \
        "$admin" "$viewer" >"$f.part")
    chown maskgate:maskgate "$f.part"
    mv "$f.part" "$f"
    log "installer's page tokens written to $f"
}

main() {
    local src
    ensure_user
    src=$(settings_dir)
    if [ -n "$src" ]; then
        apply_device_config "$src"
        apply_hostname "$src"
        apply_wifi "$src"
        apply_ssh "$src"
    else
        log "no maskgate/ folder on the boot partition: keeping the current settings"
    fi
    if [ ! -f "$ETC/device.toml" ]; then
        install -m 0640 -o root -g maskgate /dev/null "$ETC/device.toml"
    fi
    install_gate
    make_web_tokens
    "$VENV/bin/maskgate" config check "$ETC/config.toml" "$ETC/device.toml"
    if command -v systemctl >/dev/null; then
        systemctl disable "$UNIT"
        if systemd_running; then
            systemctl restart --no-block maskgate.service
        fi
    fi
    log "done"
}

main "$@"
