// The control-plane images in the backup (images.backup, prior-art feature 13):
// the images the live static pod manifests name (control_plane_images, the set a
// recovery checks) copied with skopeo from the container storage into one OCI
// layout, <generation>/images, so a recovery at a site whose registry is down
// copies them back instead of pulling (W11).
//
// The layout's files are in the generation's manifest like a tree's (verify reads
// them; restore does not: it restores the metadata's trees). An image the previous
// generation holds under the same reference is hard-linked from there, not copied.
//
// Digests: the manifests name images by digest, and CRI-O finds an image by the
// digest of the manifest it was stored with. containers-storage keeps layers
// uncompressed, so a copy out of it can keep that digest only when the original
// layers were uncompressed: skopeo --preserve-digests refuses otherwise. Then the
// image is copied from its registry instead (reached at backup time), which keeps
// the original blobs; when that fails too, the image is not held (a warning).
#pragma once

#include "config.hpp"
#include "manifest.hpp"
#include "metadata.hpp"
#include "progress.hpp"
#include "store.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ur
{

// The image's name in the layout: the sha256 hex of the reference (a layout tag
// allows neither '/' nor '@').
std::string image_tag(const std::string& ref);

struct ImageBackupPlan {
    struct Item {
        std::string ref;
        std::string tag;
        bool share = false;             // hard-linked from the previous generation
        std::vector<std::string> blobs; // share: its blobs' hex digests in the previous layout
        std::string digest;             // share: its manifest digest there
    };
    std::vector<Item> images;          // to be held, sorted by ref
    std::vector<std::string> missing;  // named by the manifests, not in the container storage
    std::vector<std::string> warnings; // each missing image, named with why; damage in the previous layout
    uint64_t new_bytes = 0;            // the space check: blobs to copy, each once (skopeo inspect sizes)
    std::string previous;              // the generation images are shared from
};

// Which images the backup takes and what they will need. `previous`: the latest
// generation, when files may be shared with it (its manifest trusted). Images the
// storage lacks are warnings, not errors: the backup is still taken.
Result<ImageBackupPlan> plan_image_backup(const Config& cfg, const std::string& root, const Store& store,
                                          const std::optional<std::string>& previous, const CancelToken& cancel);

struct ImageBackupResult {
    ImagesRecord record;
    std::vector<std::string> warnings;
    // Files linked from the previous generation, by path in the generation, with
    // that generation's manifest entry: their digests are not read again.
    std::map<std::string, Entry> reused;
};

// Fills <staging>/images (staging_fd is the staging generation, staging_path its path).
Result<ImageBackupResult> copy_images(const Config& cfg, const std::string& root, const ImageBackupPlan& plan,
                                      const Store& store, int staging_fd, const std::string& staging_path,
                                      Progress& progress, const CancelToken& cancel);

// The manifest entries of <staging>/images, in manifest order; counts them into the record.
Result<> add_image_entries(ManifestWriter& manifest, const SharedFd& staging, ImageBackupResult& r,
                           const CancelToken& cancel);

// skopeo copy oci:<backup_dir>/images:<tag> containers-storage:<ref>.
Result<> restore_image(const Config& cfg, const std::string& root, const std::string& backup_dir, const HeldImage& h,
                       std::chrono::seconds timeout, const CancelToken& cancel);

} // namespace ur
