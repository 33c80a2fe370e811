// Configuration: built-in defaults, then the vendor file, /etc/upgrade-recovery/config.toml
// and config.d/*.toml drop-ins (sorted), each overriding the keys it names.
// Unknown keys and wrong types are errors naming file, line and column.
#pragma once

#include "error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ur
{

struct TreeSpec {
    std::string name;                 // directory name inside a backup: "etc"
    std::string path;                 // absolute path on the host: "/etc"
    std::vector<std::string> exclude; // fnmatch(3) patterns relative to the tree root
    bool one_file_system = true;      // never descend into another mount (W16)
};

struct Config {
    // [partition]
    std::string partition_label = "recovery";
    std::string mount_point = "/var/recovery";
    std::string filesystem = "xfs";
    std::string mount_options;
    bool allow_plain_directory = false;

    // [backup]
    unsigned retention = 2;
    uint64_t free_space_margin = 1ull << 30;
    unsigned backup_timeout = 1200; // seconds, 0 = no deadline
    bool share_unchanged = true;
    unsigned copy_threads = 0; // 0 = two per CPU, 4 to 16
    unsigned change_retries = 3;
    std::vector<TreeSpec> trees = default_trees();

    // [ostree]
    std::string ostree_mode = "auto"; // auto | on | off
    std::string sysroot = "/sysroot";
    std::string ostree_booted; // test seam: deployment to treat as booted ("<checksum>.<serial>")

    // [etcd]
    std::string etcd_mode = "auto"; // auto | script | etcdctl | off
    std::string cluster_backup_script = "/usr/local/bin/cluster-backup.sh";
    std::string cluster_restore_script = "/usr/local/bin/cluster-restore.sh";
    bool etcd_force = false;
    unsigned etcd_timeout = 600;
    std::string etcdctl = "etcdctl";
    std::string etcd_endpoints;
    std::string etcd_cacert;
    std::string etcd_cert;
    std::string etcd_key;
    std::string static_pod_resources = "/etc/kubernetes/static-pod-resources";

    // [machineconfig]
    std::string machineconfig_current = "/etc/machine-config-daemon/currentconfig";
    bool machineconfig_required = false; // error when currentconfig does not exist

    // [recovery]
    bool wipe_images = false; // W11: crio wipe only when asked
    unsigned stop_timeout = 300;
    unsigned container_restart_timeout = 1200;
    unsigned redeploy_timeout = 1200;
    unsigned restore_script_timeout = 1800;
    unsigned pull_timeout = 1200; // W11: the control-plane images, at verify and in phase 2
    unsigned api_request_timeout = 30;
    unsigned poll_interval = 10;
    std::string kubeconfig = "/etc/kubernetes/static-pod-resources/kube-apiserver-certs/secrets/"
                             "node-kubeconfigs/localhost.kubeconfig";
    std::string crictl = "crictl";
    std::string oc = "oc";
    std::string systemctl_mode = "auto"; // auto | dbus | offline

    // [images] (prior-art feature 13): the control-plane images carried in the backup,
    // so a recovery needs no registry. Off by default: they take gigabytes.
    bool images_backup = false;
    std::string skopeo = "skopeo";
    std::string images_storage_conf;                              // empty: skopeo's default (the host's)
    std::string images_authfile = "/var/lib/kubelet/config.json"; // the registry fallback's pull secret
    unsigned images_timeout = 600;                                // seconds per skopeo call

    // [watchdog]
    // Later boots the upgrade watchdog accepts before it fires at the start of the
    // next one: an OpenShift upgrade reboots the node once, sometimes twice.
    unsigned watchdog_max_boots = 3;

    // [daemon]
    unsigned idle_exit = 120; // seconds without work or clients before the daemon exits, 0 = never

    static std::vector<TreeSpec> default_trees();

    const TreeSpec* tree(const std::string& name) const;
};

struct ConfigSource {
    std::string root = "/";          // host root prefix
    std::optional<std::string> file; // --config FILE: read this instead of /etc/upgrade-recovery/config.toml
};

// Every key the loader knows, "section.key"; the man page test checks them all.
std::vector<std::string> config_keys();

Result<Config> load_config(const ConfigSource& src);

// Parse one TOML document over `base` (tests and the loader use this).
Result<Config> parse_config_text(Config base, std::string_view text, const std::string& name);

// "10GiB", "512M", "1073741824" -> bytes.
Result<uint64_t> parse_size(std::string_view s);

} // namespace ur
