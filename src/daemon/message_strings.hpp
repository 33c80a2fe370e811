// An `as` onto a message: every string through valid_utf8, since sd-bus refuses
// one that is not UTF-8 and file names or messages quoting them need not be.
#pragma once

#include "utf8_text.hpp"

#include <string>
#include <systemd/sd-bus.h>
#include <vector>

namespace ur::dbus
{

inline int append_strings(sd_bus_message* m, const std::vector<std::string>& v)
{
    int r = sd_bus_message_open_container(m, 'a', "s");
    for (const auto& s : v)
        if (r >= 0) r = sd_bus_message_append(m, "s", valid_utf8(s).c_str());
    return r < 0 ? r : sd_bus_message_close_container(m);
}

} // namespace ur::dbus
