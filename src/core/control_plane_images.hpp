// The container images the old release's control plane needs after an etcd
// restore (W11): cluster-restore.sh runs the etcd image of the restored static
// pod resources, and the redeployment starts the backup's revisions. Since CEO
// 4.14 the restore pulls the etcd image with podman, so an image that is gone
// from the container storage must come from a registry, which a disconnected
// SNO may not reach. Recovery checks this before anything is stopped.
#pragma once

#include "container_runtime.hpp"
#include "error.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace ur
{

// Every image a static pod manifest names (containers and init containers),
// sorted and unique. OpenShift writes the manifests as JSON under a .yaml name;
// YAML is read too, by its `image:` lines. A manifest that starts as JSON but
// does not parse is an error (ErrorKind::Corrupt).
Result<std::vector<std::string>> images_in_manifest(std::string_view text);

// The images of the static pod manifests (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler) in `manifests_dir` below `dirfd`,
// sorted and unique. A manifest that does not exist adds nothing.
Result<std::vector<std::string>> control_plane_images(int dirfd, const std::string& manifests_dir);

// Whether the runtime holds `ref` under that exact tag or digest reference.
bool image_present(const std::vector<ImageInfo>& images, const std::string& ref);

// The refs of `needed` the runtime does not hold.
std::vector<std::string> missing_images(const std::vector<std::string>& needed, const std::vector<ImageInfo>& have);

} // namespace ur
