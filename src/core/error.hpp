// Errors as values: every core operation returns Result<T>. Exceptions never
// cross a module line; the kind decides CLI exit codes and D-Bus error names.
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace ur
{

enum class ErrorKind {
    Internal,
    InvalidArgs,
    BadConfig,
    PartitionNotFound,
    NotMounted,
    NoSpace,
    Busy,
    RecoveryInProgress,
    Corrupt,
    Timeout,
    Cancelled,
    NotFound,
    Io,
    Refused,        // a safety rule forbids the operation (e.g. removing a pinned deployment)
    ExternalFailed, // a command or API we call failed
    PermissionDenied,
};

std::string_view error_kind_name(ErrorKind kind);

// The kind's D-Bus error name, which the journal's ERROR field carries too
// (from the daemon and the CLI alike): "io.openshift.UpgradeRecovery1.Error.NoSpace".
inline constexpr const char* kErrorNamePrefix = "io.openshift.UpgradeRecovery1.Error.";
std::string error_name(ErrorKind kind);

struct Error {
    ErrorKind kind = ErrorKind::Internal;
    int err = 0; // errno when the cause is a system call, else 0
    std::string message;

    // Prefix more context: "backup: copy etc/foo: No space left on device".
    Error&& context(std::string_view what) &&
    {
        message = std::string(what) + ": " + message;
        return std::move(*this);
    }
    Error& context(std::string_view what) &
    {
        message = std::string(what) + ": " + message;
        return *this;
    }
};

template <class T = void> using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(ErrorKind kind, std::string message)
{
    return std::unexpected(Error{kind, 0, std::move(message)});
}

// An error from a system call: the message carries strerror(err), and the kind
// follows from errno where it has a natural meaning (ENOSPC -> NoSpace ...).
Error sys_error(int err, std::string_view what);

inline std::unexpected<Error> fail_errno(int err, std::string_view what)
{
    return std::unexpected(sys_error(err, what));
}

inline std::unexpected<Error> fail_errno(std::string_view what)
{
    return fail_errno(errno, what);
}

inline std::unexpected<Error> fail(Error e)
{
    return std::unexpected(std::move(e));
}

} // namespace ur

// Propagate an error with context: TRY_CTX(r, "copy " + path);
#define UR_TRY(expr)                                                                                                   \
    do {                                                                                                               \
        auto&& ur_try_r_ = (expr);                                                                                     \
        if (!ur_try_r_) return std::unexpected(std::move(ur_try_r_.error()));                                          \
    } while (0)

#define UR_TRY_CTX(expr, ctx)                                                                                          \
    do {                                                                                                               \
        auto&& ur_try_r_ = (expr);                                                                                     \
        if (!ur_try_r_) return std::unexpected(std::move(ur_try_r_.error()).context(ctx));                             \
    } while (0)
