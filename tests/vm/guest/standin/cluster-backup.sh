#!/bin/bash
# Stand-in /usr/local/bin/cluster-backup.sh [--force] DIR, with the file names and checks
# of the cluster-etcd-operator's script, against the guest's real etcd.
set -o errexit -o pipefail -o errtrace
[ "$EUID" -eq 0 ] || { echo "must be run as root" >&2; exit 1; }
dirty=""
if [ "${1:-}" = --force ]; then dirty=__POSSIBLY_DIRTY__; shift; fi
dir=${1:?usage: cluster-backup.sh [--force] DIR}
[ -f "$dir" ] && { echo "$dir is a file" >&2; exit 1; }
mkdir -p "$dir"
ts=$(date "+%F_%H%M%S")
snap=$dir/snapshot_${ts}${dirty}.db
res=$dir/static_kuberesources_${ts}${dirty}.tar.gz
trap 'rm -f "$snap" "$res"' ERR
dirs=()
for r in kube-apiserver kube-controller-manager kube-scheduler etcd; do
    m=/etc/kubernetes/manifests/$r-pod.yaml
    [ -f "$m" ] || { echo "$m not found" >&2; exit 1; }
    rev=$(sed -n 's/.*revision: *"\{0,1\}\([0-9]*\).*/\1/p' "$m" | head -n1)
    d=static-pod-resources/$r-pod-$rev
    [ -d "/etc/kubernetes/$d" ] || { echo "/etc/kubernetes/$d not found" >&2; exit 1; }
    dirs+=("$d")
done
tar -C /etc/kubernetes -cpzf "$res" "${dirs[@]}"
chmod 600 "$res"
export ETCDCTL_API=3
etcdctl --endpoints=http://127.0.0.1:2379 --command-timeout=120s snapshot save "$snap"
etcdctl -w json snapshot status "$snap"
echo "snapshot db and kube resources are successfully saved to $dir"
# Best effort: under the daemon's ProtectSystem=strict only the backup directory is writable.
{ echo "$(date +%s.%N) backup $snap" >>/var/lib/standin/cluster-scripts.log; } 2>/dev/null || true
