// SPDX-License-Identifier: AGPL-3.0-or-later
#include "helper/identity.h"

#include <cap-ng.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/kvm.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "shared/validate.h"

namespace fr::helper {

Result<Identity> callerIdentity()
{
	Identity who;
	who.uid = ::getuid();
	who.gid = ::getgid();
	const int count = ::getgroups(0, nullptr);
	if (count < 0)
		return Error(errno, "getgroups");
	who.groups.resize(static_cast<std::size_t>(count));
	const int got = ::getgroups(count, who.groups.data());
	if (got < 0)
		return Error(errno, "getgroups");
	who.groups.resize(static_cast<std::size_t>(got));
	return who;
}

Result<Identity> accountIdentity(std::string_view name)
{
	struct passwd pw {};
	struct passwd *found = nullptr;
	std::vector<char> buf(16384);
	// The policy may name the account by number.
	Result<std::uint64_t> uid = parseDecimal(name, 0, 0xfffffffeU, "qemu-user");
	const int rc = uid ? ::getpwuid_r(static_cast<uid_t>(*uid), &pw, buf.data(), buf.size(), &found)
			   : ::getpwnam_r(std::string(name).c_str(), &pw, buf.data(), buf.size(), &found);
	if (rc != 0 || found == nullptr)
		return Error::invalid(ENOENT, "qemu-user", name, "no such user");
	const std::string copy(pw.pw_name);
	if (pw.pw_uid == 0)
		return Error::invalid(EPERM, "qemu-user", name, "QEMU must not run as root");
	Identity who;
	who.uid = pw.pw_uid;
	who.gid = pw.pw_gid;
	int count = 64;
	who.groups.resize(static_cast<std::size_t>(count));
	if (::getgrouplist(copy.c_str(), pw.pw_gid, who.groups.data(), &count) < 0) {
		who.groups.resize(static_cast<std::size_t>(count));
		if (::getgrouplist(copy.c_str(), pw.pw_gid, who.groups.data(), &count) < 0)
			return Error(ERANGE, "getgrouplist", name);
	}
	who.groups.resize(static_cast<std::size_t>(count));
	return who;
}

Status dropPrivileges(const Identity &who) noexcept
{
	// The bounding set needs CAP_SETPCAP to shrink, so it goes first, while
	// still root. Ambient is empty after a setuid exec; clear it anyway.
	capng_clear(CAPNG_SELECT_ALL);
	if (capng_apply(CAPNG_SELECT_BOUNDS) != 0)
		return Error(EPERM, "capng_apply", "bounding set");
	if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
		return Error(errno, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
	if (::setgroups(who.groups.size(), who.groups.data()) != 0)
		return Error(errno, "setgroups");
	if (::setresgid(who.gid, who.gid, who.gid) != 0)
		return Error(errno, "setresgid");
	if (::setresuid(who.uid, who.uid, who.uid) != 0)
		return Error(errno, "setresuid");
	// Permitted and effective went with the uid change (unless a caller set
	// SECBIT_NO_SETUID_FIXUP); inheritable never goes by itself.
	capng_clear(CAPNG_SELECT_ALL);
	if (capng_apply(CAPNG_SELECT_CAPS) != 0)
		return Error(EPERM, "capng_apply", "capability sets");

	// Prove it.
	if (::setresuid(0, 0, 0) == 0 || ::setresgid(0, 0, 0) == 0)
		return Error(EPERM, "verify", "regained root after dropping it");
	uid_t r, e, s;
	gid_t rg, eg, sg;
	if (::getresuid(&r, &e, &s) != 0 || r != who.uid || e != who.uid || s != who.uid ||
	    ::getresgid(&rg, &eg, &sg) != 0 || rg != who.gid || eg != who.gid || sg != who.gid)
		return Error(EPERM, "verify", "ids");
	__user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
	__user_cap_data_struct data[2]{};
	if (::syscall(SYS_capget, &header, data) != 0)
		return Error(errno, "capget");
	for (const __user_cap_data_struct &d : data)
		if (d.effective != 0 || d.permitted != 0 || d.inheritable != 0)
			return Error(EPERM, "verify", "capabilities left");
	// The kernel may know more capabilities than these headers: ask until
	// it says the number is invalid.
	for (int cap = 0; cap < 64; ++cap) {
		const int inBounding = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
		if (inBounding < 0)
			break;
		if (inBounding == 1 || ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1)
			return Error(EPERM, "verify", "bounding or ambient set not empty");
	}
	return {};
}

namespace {

// Guest code, 32-bit protected mode, flat segments: fill 4 MiB from 1 MiB
// with zeros, then halt (mov edi, 0x100000; mov ecx, 0x400000;
// xor eax, eax; rep stosb; hlt).
constexpr unsigned char kFillCode[] = {0xbf, 0x00, 0x00, 0x10, 0x00, 0xb9, 0x00, 0x00,
				       0x40, 0x00, 0x31, 0xc0, 0xf3, 0xaa, 0xf4};
constexpr std::size_t kGuestBytes = std::size_t{8} << 20;
constexpr std::uint64_t kCodeAddress = 0x1000;
constexpr long kVcpuBudgetUs = 500000;

// Why KVM cannot be used; index 0: it can. The child reports an index.
constexpr const char *kKvmReasons[] = {
	nullptr,
	"no /dev/kvm",
	"/dev/kvm cannot be opened by QEMU's user",
	"unexpected KVM API version",
	"KVM_CREATE_VM failed",
	"KVM_CREATE_VCPU failed",
	"KVM_GET_SREGS failed",
	"KVM_SET_REGS failed",
	"the test vCPU did not run its code to the end",
	"cannot drop to QEMU's user",
	"a test vCPU did not fill 4 MiB of guest memory within 500 ms (nested virtualisation without VMX?)",
	"fork failed",
};
constexpr int kNoDrop = 9, kTooSlow = 10, kNoFork = 11;

// In the throw-away child: 0 when the test vCPU ran, else why not.
int probeKvm() noexcept
{
	const int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (kvm < 0)
		return errno == ENOENT ? 1 : 2;
	if (::ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return 3;
	const int vm = ::ioctl(kvm, KVM_CREATE_VM, 0);
	void *mem = ::mmap(nullptr, kGuestBytes, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm < 0 || mem == MAP_FAILED)
		return 4;
	std::memcpy(static_cast<char *>(mem) + kCodeAddress, kFillCode, sizeof(kFillCode));
	kvm_userspace_memory_region region{};
	region.memory_size = kGuestBytes;
	region.userspace_addr = reinterpret_cast<std::uint64_t>(mem);
	const int vcpu = ::ioctl(vm, KVM_CREATE_VCPU, 0);
	const int runSize = ::ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (::ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) != 0 || vcpu < 0 || runSize <= 0)
		return 5;
	auto *run = static_cast<kvm_run *>(
		::mmap(nullptr, static_cast<std::size_t>(runSize), PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0));
	kvm_sregs sregs{};
	kvm_regs regs{};
	if (run == MAP_FAILED || ::ioctl(vcpu, KVM_GET_SREGS, &sregs) != 0)
		return 6;
	kvm_segment flat{};
	flat.limit = 0xffffffff;
	flat.present = 1;
	flat.s = 1;
	flat.db = 1;
	flat.g = 1;
	flat.type = 3; // data, read/write
	flat.selector = 16;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = flat;
	flat.type = 11; // code, execute/read
	flat.selector = 8;
	sregs.cs = flat;
	sregs.cr0 |= 1; // protected mode, no paging
	regs.rip = kCodeAddress;
	regs.rflags = 2;
	if (::ioctl(vcpu, KVM_SET_SREGS, &sregs) != 0 || ::ioctl(vcpu, KVM_SET_REGS, &regs) != 0)
		return 7;
	// SIGALRM's default action ends this child: the parent reports it.
	const itimerval budget{{0, 0}, {0, kVcpuBudgetUs}};
	::setitimer(ITIMER_REAL, &budget, nullptr);
	const bool ran = ::ioctl(vcpu, KVM_RUN, 0) == 0;
	const itimerval off{};
	::setitimer(ITIMER_REAL, &off, nullptr);
	if (!ran || run->exit_reason != KVM_EXIT_HLT || ::ioctl(vcpu, KVM_GET_REGS, &regs) != 0 ||
	    regs.rcx != 0)
		return 8;
	return 0;
}

} // namespace

const char *kvmUnusableReason(const Identity &who) noexcept
{
	int pipeFds[2];
	if (::pipe2(pipeFds, O_CLOEXEC) != 0)
		return "pipe2 failed";
	const pid_t pid = ::fork();
	if (pid == 0) {
		::close(pipeFds[0]);
		const int reason = dropPrivileges(who) ? probeKvm() : kNoDrop;
		(void)!::write(pipeFds[1], &reason, sizeof(reason));
		::_exit(0);
	}
	::close(pipeFds[1]);
	// No answer: SIGALRM ended the child in KVM_RUN.
	int reason = pid < 0 ? kNoFork : kTooSlow;
	if (pid > 0 && ::read(pipeFds[0], &reason, sizeof(reason)) == sizeof(reason) &&
	    (reason < 0 || reason >= static_cast<int>(std::size(kKvmReasons))))
		reason = kTooSlow;
	::close(pipeFds[0]);
	while (pid > 0 && ::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
	}
	return kKvmReasons[reason];
}

} // namespace fr::helper
