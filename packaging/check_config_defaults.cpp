// The vendor config file (packaging/config.toml) documents every key the loader
// knows (config_keys()) as a commented-out assignment in its section, and with
// every assignment uncommented it is a valid configuration. As shipped (all
// commented) it must load too.
#include "config.hpp"

#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

int main(int argc, char** argv)
{
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " config.toml\n";
        return 2;
    }
    std::ifstream in(argv[1]);
    if (!in) {
        std::cerr << "cannot read " << argv[1] << "\n";
        return 1;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    int failures = 0;

    if (auto r = ur::parse_config_text(ur::Config{}, text, argv[1]); !r) {
        std::cerr << "FAIL: the file as shipped does not load: " << r.error().message << "\n";
        failures++;
    }

    static const std::regex section_re(R"(^#?\[\[?([a-z_.]+)\]\]?\s*$)");
    static const std::regex assign_re(R"(^#([a-z_]+) = .*$)");
    std::set<std::string> documented;
    std::string section, uncommented, line;
    std::istringstream lines(text);
    while (std::getline(lines, line)) {
        std::smatch m;
        if (std::regex_match(line, m, section_re)) {
            section = m[1];
            if (line.find("[[") != std::string::npos) documented.insert(section); // an array of tables is a key too
            uncommented += (line[0] == '#' ? line.substr(1) : line) + "\n";
        } else if (std::regex_match(line, m, assign_re)) {
            documented.insert(section + "." + std::string(m[1]));
            uncommented += line.substr(1) + "\n";
        } else {
            uncommented += line + "\n";
        }
    }
    for (const auto& key : ur::config_keys()) {
        if (!documented.count(key)) {
            std::cerr << "FAIL: key " << key << " is not documented in " << argv[1] << "\n";
            failures++;
        }
    }
    for (const auto& key : documented) {
        bool known = false;
        for (const auto& k : ur::config_keys())
            known |= k == key;
        if (!known) {
            std::cerr << "FAIL: " << argv[1] << " documents " << key << ", which the loader does not know\n";
            failures++;
        }
    }
    if (auto r = ur::parse_config_text(ur::Config{}, uncommented, std::string(argv[1]) + " (uncommented)"); !r) {
        std::cerr << "FAIL: with every assignment uncommented it does not load: " << r.error().message << "\n";
        failures++;
    } else {
        // The documented values are the built-in defaults.
        const ur::Config d;
        const ur::Config& c = *r;
        auto same_trees = c.trees.size() == d.trees.size();
        for (size_t i = 0; same_trees && i < c.trees.size(); i++)
            same_trees = c.trees[i].name == d.trees[i].name && c.trees[i].path == d.trees[i].path &&
                         c.trees[i].exclude == d.trees[i].exclude &&
                         c.trees[i].one_file_system == d.trees[i].one_file_system;
        struct Check {
            const char* key;
            bool ok;
        } checks[] = {
            {"partition.label", c.partition_label == d.partition_label},
            {"partition.mount_point", c.mount_point == d.mount_point},
            {"partition.filesystem", c.filesystem == d.filesystem},
            {"partition.mount_options", c.mount_options == d.mount_options},
            {"partition.allow_plain_directory", c.allow_plain_directory == d.allow_plain_directory},
            {"backup.retention", c.retention == d.retention},
            {"backup.free_space_margin", c.free_space_margin == d.free_space_margin},
            {"backup.timeout", c.backup_timeout == d.backup_timeout},
            {"backup.share_unchanged", c.share_unchanged == d.share_unchanged},
            {"backup.copy_threads", c.copy_threads == d.copy_threads},
            {"backup.change_retries", c.change_retries == d.change_retries},
            {"backup.trees", same_trees},
            {"ostree.mode", c.ostree_mode == d.ostree_mode},
            {"ostree.sysroot", c.sysroot == d.sysroot},
            {"ostree.booted_deployment", c.ostree_booted == d.ostree_booted},
            {"etcd.mode", c.etcd_mode == d.etcd_mode},
            {"etcd.backup_script", c.cluster_backup_script == d.cluster_backup_script},
            {"etcd.restore_script", c.cluster_restore_script == d.cluster_restore_script},
            {"etcd.force", c.etcd_force == d.etcd_force},
            {"etcd.timeout", c.etcd_timeout == d.etcd_timeout},
            {"etcd.etcdctl", c.etcdctl == d.etcdctl},
            {"etcd.endpoints", c.etcd_endpoints == d.etcd_endpoints},
            {"etcd.cacert", c.etcd_cacert == d.etcd_cacert},
            {"etcd.cert", c.etcd_cert == d.etcd_cert},
            {"etcd.key", c.etcd_key == d.etcd_key},
            {"etcd.static_pod_resources", c.static_pod_resources == d.static_pod_resources},
            {"machineconfig.current_config", c.machineconfig_current == d.machineconfig_current},
            {"machineconfig.required", c.machineconfig_required == d.machineconfig_required},
            {"recovery.wipe_images", c.wipe_images == d.wipe_images},
            {"recovery.stop_timeout", c.stop_timeout == d.stop_timeout},
            {"recovery.container_restart_timeout", c.container_restart_timeout == d.container_restart_timeout},
            {"recovery.redeploy_timeout", c.redeploy_timeout == d.redeploy_timeout},
            {"recovery.restore_script_timeout", c.restore_script_timeout == d.restore_script_timeout},
            {"recovery.pull_timeout", c.pull_timeout == d.pull_timeout},
            {"recovery.api_request_timeout", c.api_request_timeout == d.api_request_timeout},
            {"recovery.poll_interval", c.poll_interval == d.poll_interval},
            {"recovery.kubeconfig", c.kubeconfig == d.kubeconfig},
            {"recovery.crictl", c.crictl == d.crictl},
            {"recovery.oc", c.oc == d.oc},
            {"recovery.systemctl", c.systemctl_mode == d.systemctl_mode},
            {"watchdog.max_boots", c.watchdog_max_boots == d.watchdog_max_boots},
            {"daemon.idle_exit", c.idle_exit == d.idle_exit},
        };
        for (const auto& ch : checks) {
            if (!ch.ok) {
                std::cerr << "FAIL: the value documented for " << ch.key << " is not the built-in default\n";
                failures++;
            }
        }
    }
    if (failures) return 1;
    std::cout << "ok: " << documented.size() << " keys documented with their defaults\n";
    return 0;
}
