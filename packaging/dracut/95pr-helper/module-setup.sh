#!/bin/bash
# dracut module "pr-helper": puts pr-helper (the QEMU persistent reservation
# helper), its applet links, and either its systemd units (socket enabled) or
# a start-up hook into the initramfs.
#
# Not included by default: add it with
#   dracut --add pr-helper ...   or   add_dracutmodules+=" pr-helper "
# in /etc/dracut.conf.d/pr-helper.conf. Settings there:
#   pr_helper_binary=/usr/local/bin/pr-helper   (default: pr-helper in PATH)
#   pr_helper_unitdir=/etc/systemd/system       (default: $systemdsystemunitdir,
#                                                then this module's directory)
#   pr_helper_units="qemu-pr-helper-activated"  (Accept=yes units instead)

# called by dracut
check() {
    local bin="${pr_helper_binary:-$(find_binary pr-helper)}"
    [[ -n "$bin" && -x "$bin" ]] || return 1
    # Only when asked for.
    return 255
}

# called by dracut
depends() {
    return 0
}

_pr_helper_unit() {
    local unit="$1" dir
    for dir in "${pr_helper_unitdir:-}" "${systemdsystemunitdir:-}" /usr/lib/systemd/system /lib/systemd/system "$moddir"; do
        if [[ -n "$dir" && -f "$dir/$unit" ]]; then
            # Units name /usr/bin/pr-helper, where the binary goes below.
            inst_simple "$dir/$unit" "${systemdsystemunitdir:-/usr/lib/systemd/system}/$unit"
            return 0
        fi
    done
    derror "pr-helper: unit $unit not found"
    return 1
}

# called by dracut
install() {
    local bin="${pr_helper_binary:-$(find_binary pr-helper)}" applet
    # inst_binary copies the shared libraries too (none for a static build).
    inst_binary "$bin" /usr/bin/pr-helper
    for applet in qemu-pr-helper qemu-pr-helper-activated; do
        ln_r /usr/bin/pr-helper "/usr/bin/$applet"
    done

    if dracut_module_included "systemd"; then
        case "${pr_helper_units:-qemu-pr-helper}" in
        qemu-pr-helper-activated)
            _pr_helper_unit qemu-pr-helper-activated.socket || return 1
            _pr_helper_unit qemu-pr-helper-activated@.service || return 1
            $SYSTEMCTL -q --root "$initdir" enable qemu-pr-helper-activated.socket
            ;;
        *)
            _pr_helper_unit qemu-pr-helper.socket || return 1
            _pr_helper_unit qemu-pr-helper.service || return 1
            $SYSTEMCTL -q --root "$initdir" enable qemu-pr-helper.socket
            ;;
        esac
    else
        inst_hook pre-mount 50 "$moddir/pr-helper-start.sh"
    fi
}
