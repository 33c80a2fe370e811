// RAII for the sd-bus / sd-event handles the daemon and its client mode hold.
// Every handle is owned by exactly one of these; nothing is unref'd by hand.
#pragma once

#include <memory>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

namespace ur::dbus
{

struct BusCloser {
    // Flush queued replies and signals before the connection goes away.
    void operator()(sd_bus* b) const { sd_bus_flush_close_unref(b); }
};
struct EventUnref {
    void operator()(sd_event* e) const { sd_event_unref(e); }
};
struct SlotUnref {
    void operator()(sd_bus_slot* s) const { sd_bus_slot_unref(s); }
};
struct MessageUnref {
    void operator()(sd_bus_message* m) const { sd_bus_message_unref(m); }
};
struct SourceUnref {
    // Disable too: a callback must never run once its owner has dropped the source.
    void operator()(sd_event_source* s) const { sd_event_source_disable_unref(s); }
};

using BusPtr = std::unique_ptr<sd_bus, BusCloser>;
using EventPtr = std::unique_ptr<sd_event, EventUnref>;
using SlotPtr = std::unique_ptr<sd_bus_slot, SlotUnref>;
using MessagePtr = std::unique_ptr<sd_bus_message, MessageUnref>;
using SourcePtr = std::unique_ptr<sd_event_source, SourceUnref>;

// A held reference to a message (a method call answered later).
inline MessagePtr ref_message(sd_bus_message* m)
{
    return MessagePtr(sd_bus_message_ref(m));
}

// sd_bus_error owned on the stack.
class BusError
{
  public:
    BusError() = default;
    BusError(const BusError&) = delete;
    BusError& operator=(const BusError&) = delete;
    ~BusError() { sd_bus_error_free(&e_); }
    sd_bus_error* get() { return &e_; }
    const sd_bus_error* get() const { return &e_; }
    bool is_set() const { return sd_bus_error_is_set(&e_); }
    const char* name() const { return e_.name ? e_.name : ""; }
    const char* message() const { return e_.message ? e_.message : ""; }

  private:
    sd_bus_error e_ = SD_BUS_ERROR_NULL;
};

} // namespace ur::dbus
