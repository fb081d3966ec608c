// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// A Proxmox Backup Server datastore directory, read without any PBS
// software:
//
//   <datastore>/.chunks/<4 hex>/<64 hex>            the chunk store
//   <datastore>/[ns/<a>/[ns/<b>/...]]<type>/<id>/<time>/
//        index.json.blob                           the manifest
//        drive-scsi0.img.fidx ...                  fixed indexes (disks)
//        qemu-server.conf.blob, client.log.blob, .protected
//
// <type> is vm, ct or host; <id> and namespace names are PBS "safe ids"
// ([A-Za-z0-9_][A-Za-z0-9._-]*); namespaces nest at most 7 deep; <time> is
// RFC 3339 UTC to the second (2026-11-25T10:00:00Z).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/pbs/manifest.h"
#include "shared/result.h"

namespace fr::pbs {

inline constexpr std::size_t kMaxNamespaceDepth = 7;

// Whether `dir` is a datastore: it holds a `.chunks` directory.
bool isDatastore(const std::string &dir);

// "a/b" -> {"a", "b"}; "" -> {}. EINVAL naming the bad component.
Result<std::vector<std::string>> parseNamespace(std::string_view ns);

struct SnapshotId {
	std::vector<std::string> ns;
	std::string type; // vm, ct, host
	std::string id;
	std::string time; // 2026-11-25T10:00:00Z

	// The directory under the datastore: "ns/a/ns/b/vm/100/<time>".
	std::string path() const;
	// "vm/100/<time>" with the namespace in front as in path().
	std::string group() const;
	bool operator==(const SnapshotId &) const = default;
};

// A snapshot argument: "vm/100/2026-11-25T10:00:00Z", or with its namespace
// in front ("ns/a/ns/b/vm/100/..."). `ns` (--ns a/b) puts it in that
// namespace; giving both is an error. EINVAL naming what is wrong.
Result<SnapshotId> parseSnapshotId(std::string_view text, std::string_view ns);

// Seconds since the epoch of a snapshot time; EINVAL for another form.
Result<std::int64_t> parseSnapshotTime(std::string_view time);

struct SnapshotSummary {
	SnapshotId id;
	// From the manifest; zero with `problem` set when it is unreadable.
	std::uint64_t size = 0;
	bool encrypted = false;
	bool isProtected = false;
	std::vector<std::string> images; // the .img.fidx archives
	std::string problem;
};

// The snapshots under namespace `ns` (and its child namespaces when
// `recursive`), sorted by namespace, type, id and time. Directories that
// are not PBS names are skipped. ENOENT when the namespace does not exist.
Result<std::vector<SnapshotSummary>> listSnapshots(const std::string &datastore,
						   const std::vector<std::string> &ns,
						   bool recursive);

struct ImageArchive {
	std::string name; // "drive-scsi0.img.fidx"
	std::uint64_t size = 0;
	CryptMode cryptMode = CryptMode::None;
	Digest csum{};
	std::string indexPath; // absolute
};

struct Snapshot {
	std::string datastore; // absolute
	SnapshotId id;
	std::string dir; // absolute
	Manifest manifest;
	std::vector<ImageArchive> images; // sorted by name
};

// Reads the snapshot's manifest and lists its disk images (*.img.fidx).
// The manifest must name this snapshot (type, id, time): a manifest
// copied from elsewhere is refused. ENOENT for a missing snapshot.
Result<Snapshot> openSnapshot(const std::string &datastore, const SnapshotId &id);

// The archive called `name`, or `name` + ".fidx" ("drive-scsi0.img" for
// "drive-scsi0.img.fidx"); nullptr when none.
const ImageArchive *findImage(const Snapshot &snapshot, std::string_view name);

} // namespace fr::pbs
