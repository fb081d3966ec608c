// SPDX-License-Identifier: AGPL-3.0-or-later
// file-restore-helper: the setuid-root launcher of file-restore's VMs.
//
// main() is the ordered list of steps that helper/README.md documents one by
// one; docs/security.md says which attack each step stops. Any failure: one
// line "what(object): reason" on stderr, nothing on stdout, exit 2 (usage),
// 3 (denied), 4 (limit) or 1 (anything else), and nothing left behind.
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "helper/args.h"
#include "helper/files.h"
#include "helper/identity.h"
#include "helper/initramfs.h"
#include "helper/process.h"
#include "helper/qemu_command.h"
#include "helper/vsock.h"
#include "seccomp-profiles/qemu_seccomp_bpf.h"
#include "shared/log.h"
#include "shared/policy.h"
#include "shared/qcow2.h"

#if defined(FR_TEST_BUILD)
// tests/support/meson.build compiles test-only variants with other paths.
#else
#include "fr_config.h"
#endif

namespace fr::helper {
namespace {

enum Exit { kOk = 0, kFailed = 1, kUsage = 2, kDenied = 3, kLimit = 4 };

// Undone on failure: the only thing the helper creates on the filesystem.
struct Cleanup {
	std::string socketPath;
	Identity caller;
} gCleanup;

[[noreturn]] void die(Exit code, const Error &error)
{
	if (!gCleanup.socketPath.empty())
		removeSerialSocket(gCleanup.socketPath, gCleanup.caller);
	logError(error);
	std::exit(code);
}

template <typename T>
T check(Result<T> result, Exit code)
{
	if (!result)
		die(code, result.error());
	return std::move(*result);
}

void check(const Status &status, Exit code)
{
	if (!status)
		die(code, status.error());
}

// An image that cannot be opened is refused (3) unless the system failed.
Exit imageExit(const Error &error)
{
	switch (error.errnum()) {
	case ENOENT:
	case EMFILE:
	case ENFILE:
	case ENOMEM:
	case EIO:
		return kFailed;
	default:
		return kDenied;
	}
}

std::optional<std::uint32_t> lookupName(Principal::Kind kind, const std::string &name)
{
	std::vector<char> buf(16384);
	if (kind == Principal::Kind::User) {
		struct passwd pw {};
		struct passwd *found = nullptr;
		if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found)
			return pw.pw_uid;
	} else {
		struct group gr {};
		struct group *found = nullptr;
		if (::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) == 0 && found)
			return gr.gr_gid;
	}
	return std::nullopt;
}

int run(int argc, char **argv)
{
	// 1. argv: a program started with argc == 0 would see its environment
	//    as argv[1...] (PwnKit); nothing is derived from argv[0].
	if (argc < 1 || argv[0] == nullptr || argv[0][0] == '\0')
		die(kUsage, Error::invalid(EINVAL, "argv", "", "argv[0] missing or empty"));

	// 2. Process state inherited from the caller.
	::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	const rlimit noCore{0, 0};
	::setrlimit(RLIMIT_CORE, &noCore);
	check(checkStdFds(), kFailed);
	check(markInheritedFdsCloexec(), kFailed);
	resetSignals();
	::clearenv();

	// 3. Arguments, by a fixed grammar. Then only the fds they name survive.
	const Args args = check(parseArgs(argc, argv), kUsage);
	if (args.version) {
		std::printf("file-restore-helper %s\n", FR_VERSION);
		return kOk;
	}
	const int keep[] = {args.ticketFd, args.logFd};
	closeFdsExcept(3, keep, 2);
	if (::fcntl(args.ticketFd, F_GETFD) < 0)
		die(kUsage, Error(errno, "--ticket-fd"));
	if (args.logFd >= 0) {
		const int mode = ::fcntl(args.logFd, F_GETFL);
		if (mode < 0)
			die(kUsage, Error(errno, "--log-fd"));
		if ((mode & O_ACCMODE) == O_RDONLY)
			die(kUsage, Error::invalid(EBADF, "--log-fd", "", "not open for writing"));
	}

	// 4. The policy: root-owned, compiled-in path; any doubt denies all.
	const Identity caller = check(callerIdentity(), kFailed);
	const std::optional<std::string> text = check(readPolicyFile(FR_HELPER_CONFIG), kDenied);
	Policy policy = text ? check(parsePolicy(*text), kDenied) : defaultPolicy();
	check(resolvePolicyNames(policy, lookupName), kDenied);
	Caller who{caller.uid, {caller.gid}};
	who.gids.insert(who.gids.end(), caller.groups.begin(), caller.groups.end());
	const Grant grant = decide(policy, who);
	if (!grant.allowed)
		die(kDenied, Error::invalid(EPERM, "policy", FR_HELPER_CONFIG,
					    "uid %u may not use file-restore-helper", caller.uid));
	const std::uint32_t memory = args.memoryMiB.value_or(std::min<std::uint32_t>(256, grant.maxMemoryMiB));
	if (memory > grant.maxMemoryMiB)
		die(kLimit, Error::invalid(EDQUOT, "--memory", std::to_string(memory),
					   "above the limit of %u MiB", grant.maxMemoryMiB));
	if (args.images.size() > grant.maxDisks)
		die(kLimit, Error::invalid(EDQUOT, "--image", "", "more than %u images", grant.maxDisks));
	const std::uint32_t idle = args.timeout.value_or(
		std::clamp<std::uint32_t>(600, grant.timeoutMin, grant.timeoutMax));
	if (idle < grant.timeoutMin || idle > grant.timeoutMax)
		die(kLimit, Error::invalid(EDQUOT, "--timeout", std::to_string(idle),
					   "outside the allowed %u..%u seconds", grant.timeoutMin,
					   grant.timeoutMax));
	// QEMU never runs as root: a root caller's VM runs as the policy's user.
	const Identity qemu = caller.uid != 0 ? caller : check(accountIdentity(policy.qemuUser), kDenied);
	if (countRunningVms(qemu.uid, FR_QEMU_BINARY) >= grant.maxVms)
		die(kLimit, Error::invalid(EDQUOT, "vms", "", "%u VMs already running", grant.maxVms));

	// 5. Images: opened once, as the caller unless the policy grants the
	//    directory; QEMU only ever gets the fds.
	std::vector<UniqueFd> images;
	std::vector<std::string> formats;
	for (const ImageArg &image : args.images) {
		Result<UniqueFd> fd = openImage(image.path, grant.imageDirs, caller);
		if (!fd)
			die(imageExit(fd.error()), fd.error());
		if (image.format == "qcow2")
			check(checkQcow2File(fd->get(), image.path), kDenied);
		images.push_back(std::move(*fd));
		formats.push_back(image.format);
	}

	// 6. The guest channel: a reserved vsock CID, or a unix socket the
	//    caller owns.
	UniqueFd channel;
	std::uint32_t cid = 0;
	if (args.transport == Transport::Vsock) {
#if defined(FR_TEST_VSOCK_BUSY_BELOW)
		// Test builds only: /dev/null stands in for /dev/vhost-vsock.
		const VsockDevice device{"/dev/null", [](int, std::uint64_t c) {
			errno = EADDRINUSE;
			return c < FR_TEST_VSOCK_BUSY_BELOW ? -1 : 0;
		}};
#else
		const VsockDevice device = realVsockDevice();
#endif
		channel = check(openVsockDevice(device), kFailed);
		Result<std::uint32_t> reserved =
			reserveCid(device, channel.get(), args.cid.value_or(policy.cidMin),
				   policy.cidMin, policy.cidMax);
		if (!reserved)
			die(reserved.error().errnum() == EADDRINUSE ? kLimit : kFailed, reserved.error());
		cid = *reserved;
	} else {
		channel = check(createSerialSocket(args.socketPath, caller), kFailed);
		gCleanup = {args.socketPath, caller};
	}

	// 7. Kernel and initramfs, as the caller; the ticket goes into a copy
	//    of the initramfs in a sealed memfd.
	const std::string imageDir = FR_IMAGE_DIR;
	const UniqueFd kernel = check(openAsCaller(imageDir + "/vmlinuz", caller), kFailed);
	const UniqueFd base = check(openAsCaller(imageDir + "/initramfs.img", caller), kFailed);
	const std::string ticket = check(readTicket(args.ticketFd, 10000), kUsage);
	const UniqueFd initramfs = check(buildInitramfs(base.get(), ticket), kFailed);

	// The accelerator: KVM if QEMU's user can open it, else TCG if allowed.
	const bool kvm = kvmUsable(qemu);
	if (!kvm && !policy.tcgAllowed)
		die(kDenied, Error::invalid(EPERM, "policy", "tcg", "no usable /dev/kvm and TCG is denied"));

	// 8. Fork; the child drops everything and execs QEMU.
	const UniqueFd devNull(::open("/dev/null", O_RDWR | O_CLOEXEC));
	if (!devNull.isValid())
		die(kFailed, Error(errno, "open", "/dev/null"));
	const int logFd = args.logFd >= 0 ? args.logFd : devNull.get();
	QemuConfig config;
	config.qemuBinary = FR_QEMU_BINARY;
	config.name = args.name;
	config.kvm = kvm;
	config.memoryMiB = memory;
	config.kernelCmdline = buildKernelCmdline(idle, args.transport, kvm ? std::nullopt : hostTscKhz());
	config.transport = args.transport;
	config.cid = cid;
	config.formats = formats;
	Launch launchSpec;
	launchSpec.identity = qemu;
	launchSpec.binary = FR_QEMU_BINARY;
	launchSpec.argv = buildQemuArgv(config);
	launchSpec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C"};
	launchSpec.fds = {devNull.get(), logFd, logFd, kernel.get(), initramfs.get(), channel.get()};
	for (const UniqueFd &image : images)
		launchSpec.fds.push_back(image.get());
	launchSpec.filter = kQemuSeccompFilter;
	launchSpec.filterLength = sizeof(kQemuSeccompFilter) / sizeof(kQemuSeccompFilter[0]);
	const pid_t pid = check(launch(launchSpec), kFailed);

	// 9. Success: exactly one line on stdout.
	if (!kvm)
		logf(LogLevel::Warning, "no usable /dev/kvm: QEMU runs under TCG (slow)");
	if (args.transport == Transport::Vsock)
		std::printf("{\"pid\":%d,\"cid\":%u}\n", pid, cid);
	else
		std::printf("{\"pid\":%d,\"cid\":null}\n", pid);
	if (std::fflush(stdout) != 0) {
		// Nobody learns of this VM: stop it rather than leave it behind.
		const int flushErrno = errno;
		::kill(pid, SIGKILL);
		::waitpid(pid, nullptr, 0);
		die(kFailed, Error(flushErrno, "write", "stdout"));
	}
	return kOk;
}

} // namespace
} // namespace fr::helper

int main(int argc, char **argv)
{
	fr::setLogIdentity("file-restore-helper");
	return fr::helper::run(argc, argv);
}
