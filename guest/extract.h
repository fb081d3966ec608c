// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Streams one object of a mounted filesystem to the host: a regular file's
// bytes (raw), or the object as a pax tar / zip archive written with
// libarchive, optionally zstd-compressed. docs/protocol.md, "Extract", says
// what goes into the archives.

#include <sys/stat.h>

#include <string_view>

#include "guest/responder.h"
#include "shared/protocol.h"
#include "shared/result.h"

namespace fr::guest {

// The object is `name` inside the directory `dirfd`, or, when `name` is
// empty, the directory `dirfd` itself (a filesystem's root). `entryName` is
// what the leading Entry frame calls it. Sends that Entry, then the data.
// Every open stays beneath dirfd (openBeneath).
Status extractObject(int dirfd, std::string_view name, std::string_view entryName,
		     proto::ExtractFormat format, proto::Compression compression, Responder &out);

} // namespace fr::guest
