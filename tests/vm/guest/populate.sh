#!/bin/bash
# Node-like content in the guest root (run on the host, on the root directory given):
# static pod manifests and revisions, kubelet state, a MachineConfig naming files inside
# and outside the backed-up trees, and files with every kind of metadata a backup must
# keep (hard links, symlinks, a sparse file, set-uid, a FIFO, odd names). SELinux labels
# and ACLs are set in the guest (driver.sh prepare), where the guest kernel stores them.
set -euo pipefail
r=${1:?root}
K=$r/etc/kubernetes
mkdir -p "$K/manifests" "$K/static-pod-resources"
for res in kube-apiserver:7 kube-controller-manager:5 kube-scheduler:4 etcd:3; do
    name=${res%:*} rev=${res#*:}
    cat >"$K/manifests/$name-pod.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: $name
  namespace: openshift-$name
  labels:
    revision: "$rev"
spec:
  containers:
  - name: $name
    image: quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:$(printf %s "$name" | sha256sum | cut -c1-64)
YAML
    d=$K/static-pod-resources/$name-pod-$rev
    mkdir -p "$d/configmaps/config" "$d/secrets/serving-cert"
    # A revision directory holds its pod manifest; cluster-restore.sh takes it from there.
    cp -p "$K/manifests/$name-pod.yaml" "$d/$name-pod.yaml"
    echo "{\"revision\": $rev, \"name\": \"$name\"}" >"$d/configmaps/config/config.yaml"
    head -c 1200 /dev/urandom | base64 >"$d/secrets/serving-cert/tls.key"
    chmod 600 "$d/secrets/serving-cert/tls.key"
done
# The scripts cluster-restore.sh sources on a node (phase 2 needs them in the backup).
es=$K/static-pod-resources/etcd-certs/configmaps/etcd-scripts
mkdir -p "$es"
printf 'export ETCDCTL_API=3\nexport ETCDCTL_ENDPOINTS=http://127.0.0.1:2379\n' >"$es/etcd.env"
printf '# etcd-common-tools (stand-in)\nMANIFEST_DIR=/etc/kubernetes/manifests\nETCD_DATA_DIR=/var/lib/etcd\n' >"$es/etcd-common-tools"
kc=$K/static-pod-resources/kube-apiserver-certs/secrets/node-kubeconfigs
mkdir -p "$kc"
printf 'apiVersion: v1\nkind: Config\nclusters: []\n' >"$kc/localhost.kubeconfig"

# kubelet state
KL=$r/var/lib/kubelet
mkdir -p "$KL/pki" "$KL/pods/0b1c2d3e-uid/volumes/kubernetes.io~configmap/cfg" "$KL/device-plugins"
printf 'kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\ncgroupDriver: systemd\n' >"$KL/config.yaml"
head -c 900 /dev/urandom | base64 >"$KL/pki/kubelet-client-2025-05-01-10-00-00.pem"
ln -sf /var/lib/kubelet/pki/kubelet-client-2025-05-01-10-00-00.pem "$KL/pki/kubelet-client-current.pem"
head -c 900 /dev/urandom | base64 >"$KL/pki/kubelet-server-2025-05-01-10-00-00.pem"
ln -sf kubelet-server-2025-05-01-10-00-00.pem "$KL/pki/kubelet-server-current.pem"
echo "key: value" >"$KL/pods/0b1c2d3e-uid/volumes/kubernetes.io~configmap/cfg/data"
echo '{"cpu":"static"}' >"$KL/cpu_manager_state"

# MachineConfig: files in /etc (inside a tree) and one outside every tree.
mkdir -p "$r/etc/machine-config-daemon" "$r/var/lib/ovn-ic/etc" "$r/etc/mco"
echo "ovn-ic enabled" >"$r/var/lib/ovn-ic/etc/enable-ovn-ic"
echo "mco-managed=1" >"$r/etc/mco/node.conf"
cat >"$r/etc/machine-config-daemon/currentconfig" <<'JSON'
{"apiVersion":"machineconfiguration.openshift.io/v1","kind":"MachineConfig","metadata":{"name":"rendered-master-e2e1"},
 "spec":{"config":{"ignition":{"version":"3.2.0"},
   "storage":{"files":[{"path":"/etc/mco/node.conf","mode":420},{"path":"/var/lib/ovn-ic/etc/enable-ovn-ic","mode":420}]},
   "systemd":{"units":[{"name":"kubelet.service","enabled":true}]}}}}
JSON

# Metadata corner cases in every tree.
for t in "$r/etc/e2e" "$r/usr/local/lib/e2e" "$KL/e2e"; do
    mkdir -p "$t/dir with space" "$t/deep/a/b/c"
    echo "hard link" >"$t/hl1"
    ln -f "$t/hl1" "$t/hl2"
    ln -sf hl1 "$t/rel-link"
    ln -sf /nonexistent/target "$t/dangling-link"
    printf 'spaces\n' >"$t/dir with space/file name"
    printf 'odd\n' >"$t/odd-\$name-ünï"
    truncate -s 8M "$t/sparse.img"
    printf 'middle' | dd of="$t/sparse.img" bs=1 seek=4194304 conv=notrunc status=none
    printf 'mode\n' >"$t/setuid-file"
    chmod 4755 "$t/setuid-file"
    printf 'owned\n' >"$t/owned-file"
    chown 1234:5678 "$t/owned-file"
    chmod 0640 "$t/owned-file"
    mkfifo "$t/fifo"
    echo "to be deleted by the failed upgrade" >"$t/delete-me"
    echo "to be changed by the failed upgrade" >"$t/change-me"
    echo "to be chmod'ed by the failed upgrade" >"$t/chmod-me"
    echo "its ACL is removed by the failed upgrade" >"$t/acl-then-removed"
    echo "deep" >"$t/deep/a/b/c/file"
    touch -d '2024-02-29 12:34:56.123456789' "$t/change-me" "$t/deep/a/b/c/file"
done
mkdir -p "$r/usr/local/etc"
echo "local config" >"$r/usr/local/etc/e2e.conf"
