// man-config-keys: the configuration keys the loader knows, for the man page test
// (tests/unit/test-man-pages.sh) and the Ignition test (tests/integration/test-ignition.sh).
//
//   man-config-keys               print ur::config_keys(), one "section.key" per line
//   man-config-keys --check FILE  load FILE over the built-in defaults as the loader
//                                 does; exit 1 with the loader's message when it fails
#include "config.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

int main(int argc, char** argv)
{
    if (argc == 1) {
        for (const auto& k : ur::config_keys())
            printf("%s\n", k.c_str());
        return 0;
    }
    if (argc == 3 && std::string(argv[1]) == "--check") {
        std::ifstream in(argv[2]);
        if (!in) {
            fprintf(stderr, "man-config-keys: cannot read %s\n", argv[2]);
            return 1;
        }
        std::stringstream ss;
        ss << in.rdbuf();
        auto r = ur::parse_config_text(ur::Config{}, ss.str(), argv[2]);
        if (!r) {
            fprintf(stderr, "%s\n", r.error().message.c_str());
            return 1;
        }
        return 0;
    }
    fprintf(stderr, "usage: %s [--check FILE]\n", argv[0]);
    return 2;
}
