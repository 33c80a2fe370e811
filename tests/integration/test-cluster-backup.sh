#!/bin/sh
# Driver for test-cluster-backup (Catch2): the test starts its own etcd on free
# loopback ports with temp data dirs and stops it itself; this only skips (77)
# when the real parts are missing.
# Usage: test-cluster-backup.sh TEST-BINARY [catch2 args...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

[ $# -ge 1 ] || die "usage: $0 TEST-BINARY [catch2 args]"
require_cmd etcd etcdctl tar sha256sum base64 dd
exec "$@"
