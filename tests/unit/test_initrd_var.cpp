// The stateroot of an ostree boot, read from the kernel command line the way
// ostree-system-generator reads it (ostree=/ostree/boot.N/<stateroot>/...).
#include "initrd_var.hpp"

#include <catch2/catch.hpp>

using namespace ur;

TEST_CASE("ostree_stateroot reads the stateroot from ostree=")
{
    CHECK(ostree_stateroot("BOOT_IMAGE=(hd0,gpt3)/ostree/rhcos-0a1b/vmlinuz-5.14 rw "
                           "ostree=/ostree/boot.1/rhcos/0a1b2c/0 ignition.platform.id=metal") == "rhcos");
    CHECK(ostree_stateroot("ostree=/ostree/boot.0/fedora-coreos/abc/1\n") == "fedora-coreos");
    CHECK(ostree_stateroot("root=UUID=1 rw quiet") == "");
    CHECK(ostree_stateroot("") == "");
    // Not an ostree= argument, or one we cannot read: no stateroot, no guess.
    CHECK(ostree_stateroot("rd.ostree=/ostree/boot.1/x/y/0") == "");
    CHECK(ostree_stateroot("ostree=/sysroot/ostree/boot.1/x/y/0") == "");
    CHECK(ostree_stateroot("ostree=/ostree/boot.1") == "");
    CHECK(ostree_stateroot("ostree=/ostree/boot.1//abc/0") == "");
    CHECK(ostree_stateroot("ostree=/ostree/boot.1/../abc/0") == "");
}
