// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Member names of an archive stream from the guest, turned into what the
// safe writer may create. The guest is hostile: a name is refused outright
// (and the whole extraction with it) unless it stays beneath the
// extraction root by construction.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "shared/result.h"

namespace fr::client {

inline constexpr std::size_t kMemberPathMax = 4096;
inline constexpr std::size_t kMemberNameMax = 255;

// The components of `name`, relative to the extraction root. Empty and "."
// components are dropped ("./a//b/" is {"a","b"}; "." and "./" are the root
// itself, {}). Refused with EINVAL: the empty name, a NUL byte, an absolute
// name (leading '/'), any ".." component; ENAMETOOLONG: a component over 255
// bytes or a name over 4096 bytes.
Result<std::vector<std::string>> memberComponents(std::string_view name);

// A symlink target the writer may store (only when the user asked for
// symlinks): 1..4095 bytes, no NUL. Where it points is not checked: the
// writer never follows a symlink, and the user asked for them as they are.
Status checkSymlinkTarget(std::string_view target);

// The leftovers' prefix: ".file-restore-tmp-<pid>-<start time>-<random>".
inline constexpr std::string_view kStagingPrefix = ".file-restore-tmp-";

struct StagingOwner {
	int pid = 0;
	unsigned long long startTime = 0;
};
// Parses a staging name back into its creator; false when it is not one.
bool parseStagingName(std::string_view name, StagingOwner &owner);

} // namespace fr::client
