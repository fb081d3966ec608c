// SPDX-License-Identifier: AGPL-3.0-or-later
// file-restore-helper: the setuid-root launcher of file-restore's VMs.
//
// main() is the ordered list of steps that helper/README.md documents one by
// one; docs/security.md says which attack each step stops. Any failure: one
// line "what(object): reason" on stderr, nothing on stdout, an exit code
// from contract::HelperExit, and nothing left behind.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "helper/caller_agent.h"
#include "helper/files.h"
#include "helper/identity.h"
#include "helper/landlock.h"
#include "helper/process.h"
#include "helper/vsock.h"
#include "seccomp-profiles/qemu_seccomp_bpf.h"
#include "shared/helper_contract.h"
#include "shared/initramfs.h"
#include "shared/log.h"
#include "shared/policy.h"
#include "shared/qemu_command.h"

#if defined(FR_TEST_BUILD)
// tests/support/meson.build compiles test-only variants with other paths.
#else
#include "fr_config.h"
#endif

namespace fr::helper {
namespace {

using contract::HelperExit;

// Undoes the start on failure: the caller agent removes the socket it
// created and kills the QEMU it watches.
CallerAgent *gAgent = nullptr;

[[noreturn]] void die(HelperExit code, const Error &error)
{
	if (gAgent != nullptr)
		gAgent->finish(false);
	logError(error);
	std::exit(static_cast<int>(code));
}

template <typename T>
T check(Result<T> result, HelperExit code)
{
	if (!result)
		die(code, result.error());
	return std::move(*result);
}

void check(const Status &status, HelperExit code)
{
	if (!status)
		die(code, status.error());
}

// Step 4: the policy's grant for this caller, or exit.
Grant grantFor(const Identity &caller, Policy &policy)
{
	const std::optional<std::string> text = check(readPolicyFile(FR_HELPER_CONFIG), HelperExit::Denied);
	if (!text && caller.uid != 0)
		die(HelperExit::Denied, Error::invalid(EPERM, "policy", FR_HELPER_CONFIG,
						       "missing: only root may use the helper without "
						       "one (see docs/helper-policy.md)"));
	policy = text ? check(parsePolicy(*text), HelperExit::Denied) : defaultPolicy();
	check(resolvePolicyNames(policy, systemNames), HelperExit::Denied);
	Caller who{caller.uid, {caller.gid}};
	who.gids.insert(who.gids.end(), caller.groups.begin(), caller.groups.end());
	Grant grant = decide(policy, who);
	if (!grant.allowed)
		die(HelperExit::Denied, Error::invalid(EPERM, "policy", FR_HELPER_CONFIG,
						       "uid %u may not use file-restore-helper", caller.uid));
	return grant;
}

// Step 5: one image's fd, opened as the caller unless the policy grants its
// directory (then as root), and checked whoever opened it.
UniqueFd openImage(const contract::ImageArg &image, const Grant &grant, CallerAgent &agent)
{
	if (image.format == contract::ImageFormat::Nbd) {
		check(checkNbdSocket(image.fd), HelperExit::Usage);
		UniqueFd fd(::fcntl(image.fd, F_DUPFD_CLOEXEC, 3));
		if (!fd.isValid())
			die(HelperExit::Failed, Error(errno, "fcntl(F_DUPFD_CLOEXEC)", "--image"));
		return fd;
	}
	std::optional<Result<UniqueFd>> granted = openGrantedImage(image.path, grant.imageDirs);
	Result<UniqueFd> fd = granted ? std::move(*granted) : agent.request(CallerAgent::Op::OpenImage, image.path);
	if (!fd)
		die(contract::imageOpenExit(fd.error().errnum()), fd.error());
	check(checkImageFd(fd->get(), image.format, image.path), HelperExit::Denied);
	return std::move(*fd);
}

// Steps 1 and 2: argv and the process state inherited from the caller. A
// program started with argc == 0 would see its environment as argv[1...]
// (PwnKit); nothing is derived from argv[0].
void sanitizeProcess(int argc, char **argv)
{
	if (argc < 1 || argv[0] == nullptr || argv[0][0] == '\0')
		die(HelperExit::Usage, Error::invalid(EINVAL, "argv", "", "argv[0] missing or empty"));
	::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	const rlimit noCore{0, 0};
	::setrlimit(RLIMIT_CORE, &noCore);
	check(checkStdFds(), HelperExit::Failed);
	check(markInheritedFdsCloexec(), HelperExit::Failed);
	resetSignals();
	::clearenv();
}

// Step 3 (end): only the fds the arguments name survive, each usable.
void keepNamedFds(const contract::StartRequest &args)
{
	std::vector<int> keep = {args.ticketFd, args.logFd};
	for (const contract::ImageArg &image : args.images)
		keep.push_back(image.fd);
	closeFdsExcept(3, keep.data(), keep.size());
	if (::fcntl(args.ticketFd, F_GETFD) < 0)
		die(HelperExit::Usage, Error(errno, "--ticket-fd"));
	if (args.logFd < 0)
		return;
	const int mode = ::fcntl(args.logFd, F_GETFL);
	if (mode < 0)
		die(HelperExit::Usage, Error(errno, "--log-fd"));
	if ((mode & O_ACCMODE) == O_RDONLY)
		die(HelperExit::Usage, Error::invalid(EBADF, "--log-fd", "", "not open for writing"));
}

// Step 5 (start): the caller agent, a child that has fully become the
// caller. It must be able to start one more process: QEMU, forked by root,
// would not be counted against RLIMIT_NPROC.
CallerAgent startAgent(const Identity &caller)
{
	CallerAgent agent = check(CallerAgent::start(caller), HelperExit::Failed);
	if (Result<UniqueFd> forked = agent.request(CallerAgent::Op::ForkOnce, "RLIMIT_NPROC"); !forked) {
		agent.finish(false);
		if (forked.error().errnum() != EAGAIN)
			die(HelperExit::Failed, forked.error());
		die(HelperExit::Limit, Error::invalid(EAGAIN, "processes", "RLIMIT_NPROC",
						      "the caller may not start another process"));
	}
	return agent;
}

// Step 6: the guest channel: a reserved vsock CID (as root), or a unix
// socket the agent creates as the caller.
UniqueFd openChannel(const contract::StartRequest &args, const Policy &policy, CallerAgent &agent,
		     std::optional<std::uint32_t> &cid)
{
	if (args.transport != contract::Transport::Vsock)
		return check(agent.request(CallerAgent::Op::Listen, args.socketPath), HelperExit::Failed);
#if defined(FR_TEST_VSOCK_BUSY_BELOW)
	// Test builds only: /dev/null stands in for /dev/vhost-vsock.
	const VsockDevice device{"/dev/null", [](int, std::uint64_t c) {
		errno = EADDRINUSE;
		return c < FR_TEST_VSOCK_BUSY_BELOW ? -1 : 0;
	}};
#else
	const VsockDevice device = realVsockDevice();
#endif
	UniqueFd channel = check(openVsockDevice(device), HelperExit::Failed);
	Result<std::uint32_t> reserved =
		reserveCid(device, channel.get(), args.cid.value_or(policy.cidMin), policy.cidMin, policy.cidMax);
	if (!reserved)
		die(reserved.error().errnum() == EADDRINUSE ? HelperExit::Limit : HelperExit::Failed, reserved.error());
	cid = *reserved;
	return channel;
}

// Step 8: fork; the child drops everything and execs QEMU. The agent gets
// QEMU's pidfd before QEMU may run: if the helper dies before step 9, the
// agent kills it.
pid_t launchQemu(const QemuConfig &config, QemuFds fds, const Identity &qemu, int ruleset, CallerAgent &agent)
{
	const UniqueFd devNull(::open("/dev/null", O_RDWR | O_CLOEXEC));
	if (!devNull.isValid())
		die(HelperExit::Failed, Error(errno, "open", "/dev/null"));
	fds.devNull = devNull.get();
	if (fds.log < 0)
		fds.log = devNull.get();
	const QemuCommand command = buildQemuCommand(config, fds);
	Launch launchSpec{qemu, FR_QEMU_BINARY, command.argv, {"PATH=/usr/bin:/bin", "LC_ALL=C"}, command.fds,
			  kQemuSeccompFilter, std::size(kQemuSeccompFilter), ruleset, {}};
	launchSpec.forked = [&agent](pid_t pid) -> Status {
		const UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
		if (!pidfd.isValid())
			return Error(errno, "pidfd_open", "QEMU");
		Result<UniqueFd> watched = agent.request(CallerAgent::Op::Watch, "QEMU", pidfd.get());
		return watched ? Status() : Status(watched.error());
	};
	return check(launch(launchSpec), HelperExit::Failed);
}

int run(int argc, char **argv)
{
	sanitizeProcess(argc, argv); // 1, 2

	// 3. Arguments, by the fixed grammar (shared/helper_contract.cpp).
	const contract::HelperArgs parsed = check(contract::parseHelperArgs(argc, argv), HelperExit::Usage);
	if (parsed.version) {
		std::printf("file-restore-helper %s\n", FR_VERSION);
		return 0;
	}
	const contract::StartRequest &args = parsed.start;
	keepNamedFds(args);

	// 4. The policy: root-owned, compiled-in path; any doubt denies all.
	const Identity caller = check(callerIdentity(), HelperExit::Failed);
	Policy policy;
	const Grant grant = grantFor(caller, policy);
	const VmSize size = check(sizeVm(grant, args.memoryMiB, args.images.size(), args.timeout), HelperExit::Limit);
	// QEMU never runs as root: a root caller's VM runs as the policy's user.
	const Identity qemu = caller.uid != 0 ? caller : check(accountIdentity(policy.qemuUser), HelperExit::Denied);
	if (contract::countMarkedQemus(qemu.uid, FR_QEMU_BINARY) >= grant.maxVms)
		die(HelperExit::Limit, Error::invalid(EDQUOT, "vms", "", "%u VMs already running", grant.maxVms));

	// 5. The images, opened as the caller by the agent (or as root in a
	//    granted directory).
	CallerAgent agent = startAgent(caller);
	gAgent = &agent;
	std::vector<UniqueFd> images;
	for (const contract::ImageArg &image : args.images)
		images.push_back(openImage(image, grant, agent));

	std::optional<std::uint32_t> cid;
	const UniqueFd channel = openChannel(args, policy, agent, cid); // 6

	// 7. Kernel and initramfs, opened by the agent; the ticket goes into a
	//    copy of the initramfs in a sealed memfd.
	const std::string imageDir = FR_IMAGE_DIR;
	const UniqueFd kernel = check(agent.request(CallerAgent::Op::OpenFile, imageDir + "/vmlinuz"), HelperExit::Failed);
	const UniqueFd base = check(agent.request(CallerAgent::Op::OpenFile, imageDir + "/initramfs.img"), HelperExit::Failed);
	check(checkImageFd(kernel.get(), contract::ImageFormat::Raw, imageDir + "/vmlinuz"), HelperExit::Failed);
	check(checkImageFd(base.get(), contract::ImageFormat::Raw, imageDir + "/initramfs.img"), HelperExit::Failed);
	const std::string ticket = check(readTicket(args.ticketFd, 10000), HelperExit::Usage);
	const UniqueFd initramfs = check(buildInitramfs(base.get(), ticket), HelperExit::Failed);

	// The accelerator: KVM if QEMU's user can run a vCPU with it, else TCG
	// if allowed. QEMU's filesystem view: Landlock where the kernel has it.
	const char *noKvm = kvmUnusableReason(qemu);
	if (noKvm != nullptr && !policy.tcgAllowed)
		die(HelperExit::Denied, Error::invalid(EPERM, "policy", "tcg", "KVM unusable (%s) and TCG is denied", noKvm));
#if defined(FR_BENCH_NO_LANDLOCK) // bench/landlock-cost.sh's "before"
	const QemuRuleset ruleset{UniqueFd(), "compiled out (benchmark build)"};
#else
	const QemuRuleset ruleset = check(buildQemuRuleset(FR_QEMU_BINARY, imageDir, noKvm == nullptr), HelperExit::Failed);
#endif
	if (!ruleset.fd.isValid() && policy.requireLandlock)
		die(HelperExit::Denied, Error::invalid(EPERM, "policy", "require-landlock", "%s", ruleset.unavailable));

	const bool kvm = noKvm == nullptr;
	QemuConfig config{FR_QEMU_BINARY, args.name, kvm, size.memoryMiB,
			  buildKernelCmdline(size.idleSeconds, args.transport,
					     kvm ? std::nullopt : std::optional<std::uint64_t>(args.tscKhz)),
			  args.transport, cid.value_or(0), {}};
	QemuFds fds{-1, args.logFd, kernel.get(), initramfs.get(), channel.get(), {}};
	for (std::size_t i = 0; i < images.size(); ++i) {
		config.formats.push_back(args.images[i].format);
		fds.images.push_back(images[i].get());
	}
	const pid_t pid = launchQemu(config, std::move(fds), qemu, ruleset.fd.get(), agent); // 8

	// 9. Success: exactly one line on stdout; then the agent lets go.
	if (noKvm != nullptr)
		logf(LogLevel::Warning, "KVM unusable (%s): QEMU runs under TCG (slow)", noKvm);
	if (!ruleset.fd.isValid())
		logf(LogLevel::Warning, "QEMU runs without Landlock: %s", ruleset.unavailable);
	const std::string line = contract::startLine(pid, cid);
	if (std::fputs(line.c_str(), stdout) < 0 || std::fflush(stdout) != 0)
		die(HelperExit::Failed, Error(errno, "write", "stdout")); // the agent kills QEMU
	agent.finish(true);
	gAgent = nullptr;
	return 0;
}

} // namespace
} // namespace fr::helper

int main(int argc, char **argv)
{
	fr::setLogIdentity("file-restore-helper");
	return fr::helper::run(argc, argv);
}
