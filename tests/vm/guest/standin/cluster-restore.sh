#!/bin/bash
# Stand-in /usr/local/bin/cluster-restore.sh DIR (the ETCD_ETCDCTL_RESTORE flavour of the
# cluster-etcd-operator's script): the newest snapshot and static resources in DIR,
# etcd must be down (its static pod is not running), the old member is moved aside,
# the kube-apiserver, kube-controller-manager and kube-scheduler manifests come back
# from the static resources (upgrade-recovery leaves /etc/kubernetes/manifests to this
# script), `etcdctl snapshot restore` into /var/lib/etcd. Resources already in place
# (phase 1 restored /etc) are kept (--skip-old-files).
set -o errexit -o pipefail -o errtrace
dir=${1:?usage: cluster-restore.sh DIR}
snap=$(ls -vd "$dir"/snapshot*.db 2>/dev/null | tail -n1)
res=$(ls -vd "$dir"/static_kuberesources*.tar.gz 2>/dev/null | tail -n1)
[ -f "$snap" ] && [ -f "$res" ] || { echo "no snapshot or static resources in $dir" >&2; exit 1; }
export ETCDCTL_API=3
etcdctl -w json snapshot status "$snap"
if pgrep -x etcd >/dev/null; then
    echo "etcd is still running; stop the static pods first" >&2
    exit 1
fi
mkdir -p /var/lib/etcd-backup
rm -rf /var/lib/etcd-backup/member
[ -d /var/lib/etcd/member ] && mv /var/lib/etcd/member /var/lib/etcd-backup/
tar -C /etc/kubernetes --skip-old-files -xzf "$res" static-pod-resources
for r in kube-apiserver kube-controller-manager kube-scheduler; do
    tar -C /etc/kubernetes/manifests -xzpf "$res" --wildcards --strip-components=2 "static-pod-resources/$r-pod-*/$r-pod.yaml"
done
rm -rf /var/lib/etcd
etcdctl snapshot restore "$snap" --name urvm --data-dir /var/lib/etcd \
    --initial-cluster urvm=http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380
echo "$(date +%s.%N) restore $snap" >>/var/lib/standin/cluster-scripts.log
echo "SNAPSHOT RESTORE COMPLETED"
