#!/bin/sh
# dracut pre-mount hook (initramfs without systemd): starts pr-helper's
# qemu-pr-helper daemon. "rd.pr-helper=0" on the kernel command line skips it.
# -d returns once the socket accepts connections. The daemon keeps running
# after switch_root; its socket is in /run, which is moved to the real root.
type getargbool >/dev/null 2>&1 || . /lib/dracut-lib.sh

if getargbool 1 rd.pr-helper && [ ! -S /run/qemu-pr-helper.sock ]; then
    /usr/bin/pr-helper qemu-pr-helper -d -k /run/qemu-pr-helper.sock \
        -f /run/qemu-pr-helper.pid || warn "pr-helper: qemu-pr-helper did not start"
fi
