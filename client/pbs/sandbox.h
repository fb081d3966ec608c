// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Confinement of the NBD server process (the nbdkit plugin enters it once
// its files are open and before it serves a byte): what a hostile guest
// could reach through a bug in nbdkit or in our chunk decoding is the
// datastore, read-only, and a short list of system calls.

#include <string>
#include <vector>

#include "shared/result.h"

namespace fr::pbs {

// Landlock (shared/landlock.h): from now on this thread and the threads and processes it
// creates may only read files and list directories beneath each of
// `readable` (a directory; a file: read it), and write `writableFiles`
// (existing files, e.g. /dev/null). Nothing else: no other file, no
// execution, no creating or removing; where the kernel supports it, no TCP
// and no abstract unix sockets or signals out of the domain. Call it before
// any thread that must be confined exists. ENOSYS/EOPNOTSUPP when the
// kernel has no Landlock; ENOENT when a path does not exist.
Status restrictFilesystem(const std::vector<std::string> &readable,
			  const std::vector<std::string> &writableFiles);

// seccomp (all threads, TSYNC): the system calls an nbdkit serving one
// connection and our chunk reader make, nothing else; any other call kills
// the process. openat may ask for O_WRONLY (Landlock decides which file:
// /dev/null) but never to create, truncate, append or read-write.
Status loadServerSeccomp();

} // namespace fr::pbs
