// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/pbs/sandbox.h"

// Landlock, without seccomp: the client links this part too (to tell a
// kernel without Landlock before it starts a server).

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "shared/display.h"
#include "shared/unique_fd.h"

namespace fr::pbs {

namespace {

// Landlock's values, spelled out: Debian 12's headers predate some of them
// and the kernel tells at run time which it knows.
constexpr std::uint64_t kFsExecute = 1ULL << 0;
constexpr std::uint64_t kFsWriteFile = 1ULL << 1;
constexpr std::uint64_t kFsReadFile = 1ULL << 2;
constexpr std::uint64_t kFsReadDir = 1ULL << 3;
constexpr std::uint64_t kFsAbi1 = (1ULL << 13) - 1; // execute .. make_sym
constexpr std::uint64_t kFsRefer = 1ULL << 13;      // ABI 2
constexpr std::uint64_t kFsTruncate = 1ULL << 14;   // ABI 3
constexpr std::uint64_t kFsIoctlDev = 1ULL << 15;   // ABI 5
constexpr std::uint64_t kNetBindTcp = 1ULL << 0;    // ABI 4
constexpr std::uint64_t kNetConnectTcp = 1ULL << 1; // ABI 4
constexpr std::uint64_t kScopeAbstractUnix = 1ULL << 0; // ABI 6
constexpr std::uint64_t kScopeSignal = 1ULL << 1;       // ABI 6

struct RulesetAttr {
	std::uint64_t handledAccessFs;
	std::uint64_t handledAccessNet;
	std::uint64_t scoped;
};

struct PathBeneathAttr {
	std::uint64_t allowedAccess;
	std::int32_t parentFd;
} __attribute__((packed));

long landlockCreateRuleset(const RulesetAttr *attr, std::size_t size, std::uint32_t flags)
{
	return ::syscall(SYS_landlock_create_ruleset, attr, size, flags);
}

} // namespace

int landlockAbi()
{
	const long abi = landlockCreateRuleset(nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return abi < 0 ? 0 : static_cast<int>(abi);
}

Status restrictFilesystem(const std::vector<std::string> &readable,
			  const std::vector<std::string> &writableFiles)
{
	const int abi = landlockAbi();
	if (abi <= 0)
		return Error(errno == 0 ? ENOSYS : errno, "landlock_create_ruleset");
	RulesetAttr attr{kFsAbi1, 0, 0};
	std::size_t attrSize = sizeof(std::uint64_t);
	if (abi >= 2)
		attr.handledAccessFs |= kFsRefer;
	if (abi >= 3)
		attr.handledAccessFs |= kFsTruncate;
	if (abi >= 4) {
		attr.handledAccessNet = kNetBindTcp | kNetConnectTcp;
		attrSize = 2 * sizeof(std::uint64_t);
	}
	if (abi >= 5)
		attr.handledAccessFs |= kFsIoctlDev;
	if (abi >= 6) {
		attr.scoped = kScopeAbstractUnix | kScopeSignal;
		attrSize = sizeof(RulesetAttr);
	}
	UniqueFd ruleset(static_cast<int>(landlockCreateRuleset(&attr, attrSize, 0)));
	if (!ruleset.isValid())
		return Error(errno, "landlock_create_ruleset");
	const auto addRule = [&](const std::string &path, bool writable) -> Status {
		UniqueFd object(::open(path.c_str(), O_PATH | O_CLOEXEC));
		struct stat st {};
		if (!object.isValid() || ::fstat(object.get(), &st) != 0)
			return Error(errno, "landlock", escapeForDisplay(path));
		// A file gets file rights only (the kernel refuses directory
		// rights on a file).
		std::uint64_t access = S_ISDIR(st.st_mode) ? kFsReadFile | kFsReadDir : kFsReadFile;
		if (writable) {
			if (S_ISDIR(st.st_mode))
				return Error::invalid(EINVAL, "landlock", escapeForDisplay(path),
						      "only files may be writable");
			access |= kFsWriteFile;
		}
		const PathBeneathAttr rule{access, object.get()};
		if (::syscall(SYS_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &rule,
			      0) != 0)
			return Error(errno, "landlock_add_rule", escapeForDisplay(path));
		return {};
	};
	for (const std::string &path : readable)
		if (Status s = addRule(path, false); !s)
			return s;
	for (const std::string &path : writableFiles)
		if (Status s = addRule(path, true); !s)
			return s;
	static_assert(kFsExecute == 1, "execution is among the handled (denied) rights");
	if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return Error(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
	if (::syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0)
		return Error(errno, "landlock_restrict_self");
	return {};
}

} // namespace fr::pbs
