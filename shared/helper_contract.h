// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The contract between the client and the setuid helper, written once:
// the option grammar (one table, shared/helper_contract.cpp, that both the
// client's formatStartArgs() and the helper's parseHelperArgs() walk), the
// fds the client hands over, the exit codes, the success line and the QEMU
// marker. Adding an option is one row in that table plus its field in
// StartRequest; both programs see it. helper/README.md documents the
// grammar for auditors; tests/shared/helper_contract_test.cpp proves that
// what the client formats, the helper parses back unchanged.
//
//   file-restore-helper --version
//   file-restore-helper start --name NAME --transport vsock|serial
//           [--cid N] [--socket PATH] [--memory MIB] [--timeout SECONDS]
//           [--tsc-khz KHZ] --ticket-fd FD [--log-fd FD]
//           --image FORMAT:PATH | --image nbd:FD  [--image ...]
//
// The grammar is parsed by hand (no getopt: no abbreviations, no
// "--opt=value", no permutation, no POSIXLY_CORRECT, no locale); every value
// is checked against an allow-list and nothing that could be QEMU option
// syntax (',', '=') survives in a value that reaches QEMU's command line
// (image paths never do: images are passed as fds).

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/result.h"

namespace fr::contract {

// The helper's exit status. Failure: nothing on stdout, one line
// "file-restore-helper: what(object): reason" on stderr.
enum class HelperExit : int {
	Ok = 0,
	Failed = 1, // a system call failed, a file is missing
	Usage = 2,  // an argument, the ticket or an fd named is invalid
	Denied = 3, // the policy, an image that may not be opened, TCG denied
	Limit = 4,  // memory, disks, idle timeout, running VMs, processes, CIDs
};
// For the client's messages: the cause in a few words and what to do
// ("refused by the helper's policy (see docs/helper-policy.md)").
const char *helperExitAdvice(int exitCode) noexcept;
// An image that cannot be opened (errno) is refused (Denied) unless the
// system failed (missing file, out of fds or memory, I/O error).
HelperExit imageOpenExit(int errnum) noexcept;

enum class Transport { Serial, Vsock };
const char *transportName(Transport transport) noexcept;
std::optional<Transport> parseTransportName(std::string_view name) noexcept;

// Disk image formats QEMU is told explicitly (never probed). Nbd: not a file
// but a connected unix stream socket on which the client serves the disk
// (a PBS datastore archive) over NBD.
enum class ImageFormat { Raw, Qcow2, Vmdk, Vdi, Vhdx, Nbd };
const char *formatName(ImageFormat format) noexcept;
std::optional<ImageFormat> parseFormatName(std::string_view name) noexcept;

// The fds the client hands the helper (besides 0, 1 and 2): the ticket
// pipe, the VM's console log, then one per nbd image.
inline constexpr int kTicketFd = 3;
inline constexpr int kLogFd = 4;
inline constexpr int kFirstNbdFd = 5;

struct ImageArg {
	ImageFormat format = ImageFormat::Raw;
	std::string path; // absolute, no control bytes; every format but nbd
	int fd = -1;      // nbd: the socket's fd number in the helper

	bool operator==(const ImageArg &) const = default;
};

struct StartRequest {
	std::string name; // the VM name (systemd-escaped)
	Transport transport = Transport::Serial;
	std::optional<std::uint32_t> cid;       // vsock: the first CID to try
	std::string socketPath;                 // serial: where the helper listens
	std::optional<std::uint32_t> memoryMiB;
	std::optional<std::uint32_t> timeout;   // the guest's idle timeout, seconds
	// The host's TSC frequency, measured by the client (the guest kernel
	// needs it under TCG; it only affects the caller's own VM).
	std::optional<std::uint32_t> tscKhz;
	int ticketFd = kTicketFd;
	int logFd = -1;                         // -1: no console log
	std::vector<ImageArg> images;

	bool operator==(const StartRequest &) const = default;
};

// Bounds of the grammar itself (the policy's limits come on top).
inline constexpr int kMaxArgc = 160;
inline constexpr std::size_t kMaxArgLength = 4200;
inline constexpr std::size_t kMaxImages = 64;
inline constexpr int kMaxFd = 1 << 20;
// sun_path holds 108 bytes including the terminating NUL.
inline constexpr std::size_t kMaxSocketPath = 107;
inline constexpr std::uint32_t kMinTscKhz = 100000, kMaxTscKhz = 10000000;

// The client's side: {helperPath, "start", "--name", ...} for `request`.
std::vector<std::string> formatStartArgs(const std::string &helperPath, const StartRequest &request);

struct HelperArgs {
	bool version = false; // "--version" alone
	StartRequest start;
};
// The helper's side: parses argv (argc >= 1; argv[0] is ignored). Error
// (EINVAL, E2BIG, ENAMETOOLONG, ERANGE) names the offending option and
// value; the helper exits HelperExit::Usage on any of them.
Result<HelperArgs> parseHelperArgs(int argc, const char *const *argv);

// The one line of success output: {"pid":N,"cid":M} (cid null for the
// serial transport) and '\n'. The client parses it strictly
// (client/helper_output.h).
std::string startLine(pid_t pid, std::optional<std::uint32_t> cid);

// QEMU runs with "-name guest=file-restore:<VM name>": the marker by which
// the client (and the helper's VM count) recognise its QEMUs in
// /proc/<pid>/cmdline, together with the process start time, never by pid
// alone.
std::string qemuNameArgument(std::string_view vmName);
// The VM name in a NUL-separated /proc/<pid>/cmdline: the argument after
// "-name" that starts with "guest=file-restore:", up to a ',' (QEMU's own
// option syntax) or its end. nullopt when there is no marker.
std::optional<std::string_view> markedVmName(std::string_view cmdline) noexcept;

// The processes that carry the marker, read from /proc: what the helper
// counts against the policy's VM limit (real uid and argv[0] = its QEMU)
// and what the client looks through for VMs it lost track of. Any owner;
// a process that vanishes or cannot be read is left out.
struct MarkedQemu {
	pid_t pid = 0;
	uid_t realUid = 0;
	std::string argv0;
	std::string vmName;
};
std::vector<MarkedQemu> findMarkedQemus();
// How many of them run as real uid `uid` with argv[0] `qemuBinary`.
std::uint32_t countMarkedQemus(uid_t uid, std::string_view qemuBinary);

} // namespace fr::contract
