// Logging: human lines on stderr (the CLI's voice) and structured journald
// entries with a MESSAGE_ID per lifecycle event (units/upgrade-recovery.catalog).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace ur::log
{

enum class Level { Debug, Info, Warning, Error };

// MESSAGE_IDs; each is explained in units/upgrade-recovery.catalog.
inline constexpr const char* kBackupStarted = "db6b67fd5620470f9a284327447c36b3";
inline constexpr const char* kBackupSucceeded = "85622ca2b66a4d8ab266daa80c34fb03";
inline constexpr const char* kBackupFailed = "0b67e28681194639ac2c9e9560d1bae8";
inline constexpr const char* kRecoveryArmed = "a710fdbdd46b458bae3134003c6c6c59";
inline constexpr const char* kRecoveryDisarmed = "45b4cc1b257e4946a80837cbc5c65c22";
inline constexpr const char* kRecoveryStarted = "a36a1a6c7cfd420bac2327ab7bc9c141";
inline constexpr const char* kPhase1Done = "df581197f42a445a835c66cdb1d4c990";
inline constexpr const char* kPhase2Done = "801d5783118046f499383fdda6a378ee";
inline constexpr const char* kRecoveryFailed = "e38a3f3b7e204142a6d7ca3540825c37";
inline constexpr const char* kRollbackApplied = "caecf4535efc447ca0685834f54b9866";
inline constexpr const char* kJobInterrupted = "4f2c78b431f84437adc8c715278bfcb1";
inline constexpr const char* kRecoveryStep = "152f7cb330e1422cb4a1ac857012825d"; // done or skipped

struct Field {
    std::string key; // journal field name without prefix, e.g. "BACKUP_ID" -> UPGRADE_RECOVERY_BACKUP_ID
    std::string value;
};

// Where plain messages go: stderr (default) and/or the journal. When systemd
// made stderr a journal stream ($JOURNAL_STREAM), printed messages are not
// sent natively as well; events are (they carry MESSAGE_ID and fields), and
// are printed too, for a console that only shows the stream.
void set_stderr(bool on);
void set_journal(bool on);
void set_verbose(bool on);
// SYSLOG_IDENTIFIER of native entries (default "upgrade-recovery"); call before threads start.
void set_identifier(std::string_view id);

void message(Level level, std::string_view msg);
inline void info(std::string_view m)
{
    message(Level::Info, m);
}
inline void warning(std::string_view m)
{
    message(Level::Warning, m);
}
inline void error(std::string_view m)
{
    message(Level::Error, m);
}
inline void debug(std::string_view m)
{
    message(Level::Debug, m);
}

// A lifecycle event: always to the journal (when reachable) with MESSAGE_ID and
// UPGRADE_RECOVERY_* fields; also printed like message().
void event(const char* message_id, Level level, std::string_view msg, std::initializer_list<Field> fields);

} // namespace ur::log
