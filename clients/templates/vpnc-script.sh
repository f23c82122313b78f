#!/bin/sh
# vpnc script of the lab's vpnc harness (clients/vpnc.py).
# Usage (from vpnc.conf): WORKDIR/vpnc-script [NETWORK/LEN ...]
# Records the variables vpnc hands over in WORKDIR/vpnc-env.<reason> (NUL-separated,
# so that a multi-line banner survives), brings up the tun device with the assigned
# address, and routes the Unity split networks and the given networks through it.
# It never touches /etc/resolv.conf: the file system is shared with the machine.
# the work directory is the script's own: vpnc cuts long configuration lines
dir=$(dirname "$0")
env -0 | grep -zE '^(reason|VPNGATEWAY|TUNDEV|INTERNAL_IP4_[A-Z]+|CISCO_[A-Z0-9_]+|VPNPID)=' \
    >"$dir/vpnc-env.$reason.tmp" && mv "$dir/vpnc-env.$reason.tmp" "$dir/vpnc-env.$reason"

route_via_tun() {
    ip route replace "$1" dev "$TUNDEV" src "$INTERNAL_IP4_ADDRESS"
}

case "$reason" in
  pre-init)
    [ -c /dev/net/tun ] || { mkdir -p /dev/net; mknod -m 666 /dev/net/tun c 10 200; }
    ;;
  connect)
    ip link set dev "$TUNDEV" up mtu 1380
    ip addr add "$INTERNAL_IP4_ADDRESS/32" dev "$TUNDEV"
    i=0
    while [ "$i" -lt "${CISCO_SPLIT_INC:-0}" ]; do
        eval addr=\$CISCO_SPLIT_INC_${i}_ADDR
        eval len=\$CISCO_SPLIT_INC_${i}_MASKLEN
        route_via_tun "$addr/$len"
        i=$((i + 1))
    done
    for network in "$@"; do
        route_via_tun "$network"
    done
    ;;
  disconnect)
    ip link set dev "$TUNDEV" down 2>/dev/null
    ;;
esac
exit 0
