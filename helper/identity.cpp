// SPDX-License-Identifier: AGPL-3.0-or-later
#include "helper/identity.h"

#include <cap-ng.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/kvm.h>
#include <pwd.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
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

ScopedFsIdentity::ScopedFsIdentity(const Identity &who) noexcept
{
	::setfsgid(who.gid);
	::setfsuid(who.uid);
	// Each call returns the previous value: asking again for the same id
	// reads back what is in effect.
	if (static_cast<uid_t>(::setfsuid(who.uid)) != who.uid ||
	    static_cast<gid_t>(::setfsgid(who.gid)) != who.gid)
		status_ = Error(EPERM, "setfsuid", "caller");
}

ScopedFsIdentity::~ScopedFsIdentity()
{
	::setfsuid(0);
	::setfsgid(0);
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

bool kvmUsable(const Identity &who) noexcept
{
	const pid_t pid = ::fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		if (!dropPrivileges(who))
			::_exit(1);
		const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC | O_NOCTTY);
		::_exit(fd >= 0 && ::ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION ? 0 : 1);
	}
	int status = 0;
	while (::waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

} // namespace fr::helper
