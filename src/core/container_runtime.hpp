// The container runtime, reached only through `crictl` (and `crio wipe`):
// one narrow interface; on a node the real commands, in tests a stand-in
// script named by cfg.crictl. Every call has a deadline (W7, W8) and output is
// read as JSON, never scraped from columns (W8).
#pragma once

#include "config.hpp"
#include "progress.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ur
{

struct ContainerInfo {
    std::string id;
    std::string name;  // metadata.name: "etcd", "kube-apiserver-operator", ...
    std::string state; // "CONTAINER_RUNNING", "CONTAINER_EXITED", ...
    std::string pod_id;
    int64_t created_ns = 0;
    bool running() const { return state == "CONTAINER_RUNNING"; }
};

struct ImageInfo {
    std::string id;
    std::vector<std::string> tags;    // repoTags: "quay.io/x/y:4.15"
    std::vector<std::string> digests; // repoDigests: "quay.io/x/y@sha256:..."
};

class ContainerRuntime
{
  public:
    virtual ~ContainerRuntime() = default;
    // All containers, running or not (`crictl ps -a -o json`).
    virtual Result<std::vector<ContainerInfo>> list_containers(std::chrono::seconds timeout,
                                                               const CancelToken& cancel) = 0;
    // Stop every pod sandbox, then remove them all (`crictl stopp`, `crictl rmp -fa`), and
    // check that none is left. Sandboxes go first so a later CRI-O start does not spend
    // minutes per pod restoring network state (LCA's lesson).
    virtual Result<unsigned> remove_all_pods(std::chrono::seconds timeout, const CancelToken& cancel) = 0;
    // The images in the container storage (`crictl images -o json`).
    virtual Result<std::vector<ImageInfo>> list_images(std::chrono::seconds timeout, const CancelToken& cancel) = 0;
    // `crictl pull REF`: through CRI-O, with the node's pull secret and mirrors.
    virtual Result<> pull_image(const std::string& ref, std::chrono::seconds timeout, const CancelToken& cancel) = 0;
    // `crio wipe -f`: removes container AND image storage; only when recovery.wipe_images (W11).
    virtual Result<> wipe_storage(std::chrono::seconds timeout, const CancelToken& cancel) = 0;
};

// crictl = cfg.crictl; crio is found on PATH unless `crio` is given.
std::unique_ptr<ContainerRuntime> make_crictl_runtime(const Config& cfg, std::string crio = "crio");

// Parse `crictl ps -o json` output (exposed for tests).
Result<std::vector<ContainerInfo>> parse_crictl_ps(std::string_view json_text);

// Parse `crictl images -o json` output (exposed for tests).
Result<std::vector<ImageInfo>> parse_crictl_images(std::string_view json_text);

// The newest container with that name (by creation time), if any.
const ContainerInfo* newest_container(const std::vector<ContainerInfo>& all, const std::string& name);

} // namespace ur
