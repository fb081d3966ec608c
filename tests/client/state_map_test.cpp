// SPDX-License-Identifier: AGPL-3.0-or-later
// The state map: strict codec, and the store on disk (permissions, owner,
// lock with timeout, atomic replace, corruption kept aside and reported).
#include "client/state_map.h"

#include <dirent.h>
#include <sys/file.h>
#include <sys/wait.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/file_lock.h"
#include "client/runtime_dir.h"
#include "client/state_store.h"
#include "test_util.h"

namespace fr::client {
namespace {

using nlohmann::json;
using test::readFile;
using test::TempDir;
using test::writeFile;

VmRecord sampleRecord(const std::string &name = "qemu_-srv-b-vm-100-s")
{
	VmRecord r;
	r.name = name;
	r.pid = 4321;
	r.startTime = 987654;
	r.transport = Transport::Serial;
	r.socketPath = "/run/user/1000/file-restore/vm-0123456789abcdef.sock";
	r.ticket = std::string(64, 'a');
	r.startedAt = 1700000000;
	r.idleTimeout = 600;
	r.memory = 256;
	r.archives = {{"drive-scsi0.img", ImageFormat::Raw, "/srv/b/vm/100/s/drive-scsi0.img"},
		      {"d\xff\n.qcow2", ImageFormat::Qcow2, "/srv/b/vm/100/s/d\xff\n.qcow2"}};
	return r;
}

TEST(StateMap, RoundTrips)
{
	StateMap map;
	map.put(sampleRecord());
	VmRecord vsock = sampleRecord("qemu_image-x.img");
	vsock.transport = Transport::Vsock;
	vsock.cid = 4242;
	vsock.socketPath.clear();
	vsock.memory.reset();
	map.put(vsock);
	const std::string text = serializeStateMap(map);
	Result<StateMap> back = parseStateMap(text);
	ASSERT_TRUE(back) << back.error().message();
	ASSERT_EQ(back->vms.size(), 2U);
	EXPECT_EQ(back->vms[0], map.vms[0]);
	EXPECT_EQ(back->vms[1], map.vms[1]);
	// Byte names survive (base64 in the file).
	EXPECT_EQ(back->vms[0].archives[1].name, "d\xff\n.qcow2");
}

TEST(StateMap, PutEraseFind)
{
	StateMap map;
	map.put(sampleRecord("a"));
	map.put(sampleRecord("b"));
	VmRecord again = sampleRecord("a");
	again.pid = 99;
	map.put(again);
	ASSERT_EQ(map.vms.size(), 2U);
	EXPECT_EQ(map.find("a")->pid, 99);
	EXPECT_TRUE(map.erase("a"));
	EXPECT_FALSE(map.erase("a"));
	EXPECT_EQ(map.find("a"), nullptr);
}

// Each mutation of a valid document must be refused.
TEST(StateMap, RefusesInvalidFields)
{
	StateMap map;
	map.put(sampleRecord());
	const json good = json::parse(serializeStateMap(map));
	const std::vector<std::pair<std::string, json>> mutations = {
		{"/version", 2},
		{"/version", "1"},
		{"/vms", json::object()},
		{"/vms/0/name", "has/slash"},
		{"/vms/0/name", ""},
		{"/vms/0/name", std::string(256, 'a')},
		{"/vms/0/pid", 1},
		{"/vms/0/pid", -3},
		{"/vms/0/pid", 4194305},
		{"/vms/0/pid", 12.5},
		{"/vms/0/pid", "12"},
		{"/vms/0/start_time", -1},
		{"/vms/0/transport", "tcp"},
		{"/vms/0/cid", 42},            // serial with a cid
		{"/vms/0/socket", nullptr},    // serial without a socket
		{"/vms/0/socket", "relative.sock"},
		{"/vms/0/socket", "/run/a b.sock"},
		{"/vms/0/ticket", std::string(64, 'A')},
		{"/vms/0/ticket", std::string(63, 'a')},
		{"/vms/0/idle_timeout", 4294967296LL},
		{"/vms/0/archives", json::array()},
		{"/vms/0/archives/0/name", "not base64!"},
		{"/vms/0/archives/0/name", "Ly4u"},          // "/.."
		{"/vms/0/archives/0/format", "vpc"},
		{"/vms/0/archives/0/path", "cmVsYXRpdmU="},  // "relative"
		{"/vms/0/archives/1/name", json::parse(good["vms"][0]["archives"][0]["name"].dump())},
	};
	for (const auto &[pointer, value] : mutations) {
		json doc = good;
		doc[json::json_pointer(pointer)] = value;
		EXPECT_FALSE(parseStateMap(doc.dump())) << pointer << " = " << value.dump();
	}
	json missing = good;
	missing["vms"][0].erase("ticket");
	EXPECT_FALSE(parseStateMap(missing.dump()));
	json twice = good;
	twice["vms"].push_back(good["vms"][0]);
	EXPECT_FALSE(parseStateMap(twice.dump()));
	// Unknown keys are fine (a newer client's map).
	json extra = good;
	extra["vms"][0]["future"] = 1;
	extra["note"] = "x";
	EXPECT_TRUE(parseStateMap(extra.dump()));
	EXPECT_FALSE(parseStateMap(""));
	EXPECT_FALSE(parseStateMap("{\"version\":1,\"vms\":[]"));
	EXPECT_TRUE(parseStateMap("{\"version\":1,\"vms\":[]}"));
}

class StoreTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		Result<RuntimeDir> opened = openRuntimeDir(base_.path());
		ASSERT_TRUE(opened) << opened.error().message();
		dir_ = std::move(*opened);
		store_ = std::make_unique<StateStore>(dir_.fd.get(), dir_.path);
	}
	Deadline soon() const { return Clock::now() + std::chrono::seconds(5); }
	std::vector<std::string> files() const
	{
		std::vector<std::string> out;
		DIR *d = ::opendir(dir_.path.c_str());
		while (const dirent *e = ::readdir(d))
			if (e->d_name[0] != '.')
				out.emplace_back(e->d_name);
		::closedir(d);
		std::sort(out.begin(), out.end());
		return out;
	}
	Status put(const VmRecord &record)
	{
		std::optional<CorruptMap> corrupt;
		return store_->update(
			soon(),
			[&](StateMap &map, bool &changed) {
				map.put(record);
				changed = true;
				return Status{};
			},
			corrupt);
	}

	TempDir base_;
	RuntimeDir dir_;
	std::unique_ptr<StateStore> store_;
};

TEST_F(StoreTest, AbsentMapIsEmptyAndWritesArePrivateAndAtomic)
{
	std::optional<CorruptMap> corrupt;
	Result<StateMap> empty = store_->read(soon(), corrupt);
	ASSERT_TRUE(empty);
	EXPECT_TRUE(empty->vms.empty());
	EXPECT_FALSE(corrupt);
	EXPECT_EQ(test::modeOf(dir_.path) & 07777, 0700U);

	ASSERT_TRUE(put(sampleRecord()));
	EXPECT_EQ(test::modeOf(dir_.path + "/vm-map.json") & 07777, 0600U);
	// No temporary left behind.
	EXPECT_EQ(files(), (std::vector<std::string>{"vm-map.json", "vm-map.lock"}));
	Result<StateMap> back = store_->read(soon(), corrupt);
	ASSERT_TRUE(back);
	ASSERT_EQ(back->vms.size(), 1U);
	EXPECT_EQ(back->vms[0], sampleRecord());
}

TEST_F(StoreTest, StaleTemporaryFromKilledWriterIsReplaced)
{
	writeFile(dir_.path + "/vm-map.json.tmp", "half a map");
	ASSERT_TRUE(put(sampleRecord()));
	EXPECT_FALSE(test::exists(dir_.path + "/vm-map.json.tmp"));
}

TEST_F(StoreTest, FailedChangeWritesNothing)
{
	ASSERT_TRUE(put(sampleRecord("a")));
	const std::string before = readFile(dir_.path + "/vm-map.json");
	std::optional<CorruptMap> corrupt;
	Status status = store_->update(
		soon(),
		[](StateMap &map, bool &changed) {
			map.vms.clear();
			changed = true;
			return Status(Error(EIO, "test", "x"));
		},
		corrupt);
	EXPECT_FALSE(status);
	EXPECT_EQ(readFile(dir_.path + "/vm-map.json"), before);
}

TEST_F(StoreTest, CorruptMapIsKeptAsideAndReported)
{
	writeFile(dir_.path + "/vm-map.json", "{\"version\":1,\"vms\":[{\"name\":", 0600);
	std::optional<CorruptMap> corrupt;
	Result<StateMap> map = store_->read(soon(), corrupt);
	ASSERT_TRUE(map) << map.error().message();
	EXPECT_TRUE(map->vms.empty());
	ASSERT_TRUE(corrupt);
	EXPECT_NE(corrupt->reason.find("not JSON"), std::string::npos);
	// Kept byte for byte under a timestamped name; a fresh map replaces it.
	EXPECT_EQ(readFile(corrupt->keptAs), "{\"version\":1,\"vms\":[{\"name\":");
	const std::string kept = corrupt->keptAs.substr(corrupt->keptAs.rfind('/') + 1);
	EXPECT_EQ(kept.substr(0, 20), "vm-map.json.corrupt-");
	EXPECT_EQ(kept.size(), 20U + 16U); // YYYYmmddTHHMMSSZ
	EXPECT_TRUE(parseStateMap(readFile(dir_.path + "/vm-map.json")));

	// A second corruption in the same second gets its own name.
	writeFile(dir_.path + "/vm-map.json", "garbage", 0600);
	std::optional<CorruptMap> again;
	ASSERT_TRUE(store_->read(soon(), again));
	ASSERT_TRUE(again);
	EXPECT_NE(again->keptAs, corrupt->keptAs);
	EXPECT_EQ(readFile(again->keptAs), "garbage");
	EXPECT_EQ(readFile(corrupt->keptAs), "{\"version\":1,\"vms\":[{\"name\":");
}

TEST_F(StoreTest, WideModeIsNarrowedForeignOwnerRefused)
{
	ASSERT_TRUE(put(sampleRecord()));
	ASSERT_EQ(::chmod((dir_.path + "/vm-map.json").c_str(), 0644), 0);
	std::optional<CorruptMap> corrupt;
	ASSERT_TRUE(store_->read(soon(), corrupt));
	EXPECT_EQ(test::modeOf(dir_.path + "/vm-map.json") & 07777, 0600U);
	if (::geteuid() != 0)
		GTEST_SKIP() << "changing the owner needs root (runs as root in CI)";
	ASSERT_EQ(::chown((dir_.path + "/vm-map.json").c_str(), 65534, 65534), 0);
	Result<StateMap> refused = store_->read(soon(), corrupt);
	ASSERT_FALSE(refused);
	EXPECT_EQ(refused.error().errnum(), EPERM);
}

TEST_F(StoreTest, LockTimesOutWhileAnotherProcessHoldsIt)
{
	int ready[2];
	ASSERT_EQ(::pipe(ready), 0);
	const pid_t child = ::fork();
	if (child == 0) {
		Result<FileLock> held = FileLock::acquire(dir_.fd.get(), kStateLockFile,
							  Clock::now() + std::chrono::seconds(5), "t");
		(void)!::write(ready[1], "x", 1);
		::sleep(2);
		_exit(held ? 0 : 1);
	}
	char c;
	ASSERT_EQ(::read(ready[0], &c, 1), 1);
	std::optional<CorruptMap> corrupt;
	const auto before = Clock::now();
	Result<StateMap> blocked =
		store_->read(Clock::now() + std::chrono::milliseconds(300), corrupt);
	ASSERT_FALSE(blocked);
	EXPECT_EQ(blocked.error().errnum(), ETIMEDOUT);
	EXPECT_GE(Clock::now() - before, std::chrono::milliseconds(290));
	// Once the holder is gone the lock is free again (no stale lock).
	int status = 0;
	::waitpid(child, &status, 0);
	EXPECT_TRUE(store_->read(soon(), corrupt));
	::close(ready[0]);
	::close(ready[1]);
}

TEST_F(StoreTest, ConcurrentWritersLoseNothing)
{
	constexpr int kWriters = 8;
	std::vector<pid_t> children;
	for (int i = 0; i < kWriters; ++i) {
		const pid_t child = ::fork();
		if (child == 0) {
			StateStore store(dir_.fd.get(), dir_.path);
			std::optional<CorruptMap> corrupt;
			Status ok = store.update(
				Clock::now() + std::chrono::seconds(20),
				[&](StateMap &map, bool &changed) {
					map.put(sampleRecord("vm" + std::to_string(i)));
					changed = true;
					return Status{};
				},
				corrupt);
			_exit(ok && !corrupt ? 0 : 1);
		}
		children.push_back(child);
	}
	for (pid_t child : children) {
		int status = 0;
		ASSERT_EQ(::waitpid(child, &status, 0), child);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	std::optional<CorruptMap> corrupt;
	Result<StateMap> map = store_->read(soon(), corrupt);
	ASSERT_TRUE(map);
	EXPECT_EQ(map->vms.size(), static_cast<std::size_t>(kWriters));
}

TEST(RuntimeDir, BaseMustBePrivateAndOurs)
{
	TempDir dir;
	ASSERT_EQ(::chmod(dir.path().c_str(), 0700), 0);
	EXPECT_EQ(*runtimeBase(dir.path().c_str()), dir.path());
	EXPECT_EQ(runtimeBase("relative/dir").error().errnum(), EINVAL);
	EXPECT_EQ(runtimeBase((dir / "missing").c_str()).error().errnum(), ENOENT);
	ASSERT_EQ(::chmod(dir.path().c_str(), 0777), 0);
	EXPECT_EQ(runtimeBase(dir.path().c_str()).error().errnum(), EPERM);
	ASSERT_EQ(::chmod(dir.path().c_str(), 0700), 0);
	if (::geteuid() == 0) {
		ASSERT_EQ(::chown(dir.path().c_str(), 65534, 65534), 0);
		EXPECT_EQ(runtimeBase(dir.path().c_str()).error().errnum(), EPERM);
		ASSERT_EQ(::chown(dir.path().c_str(), 0, 0), 0);
	}
}

TEST(RuntimeDir, FallbackWithoutXdgRuntimeDirIsRunUserOrAClearError)
{
	Result<std::string> base = runtimeBase(nullptr);
	const std::string expected = "/run/user/" + std::to_string(::geteuid());
	if (base) {
		EXPECT_EQ(*base, expected);
	} else {
		EXPECT_EQ(base.error().errnum(), ENOENT);
		EXPECT_NE(base.error().message().find("set XDG_RUNTIME_DIR"), std::string::npos);
		EXPECT_NE(base.error().message().find(expected), std::string::npos);
	}
}

TEST(RuntimeDir, SubdirectoryIsCreatedPrivateAndSymlinksRefused)
{
	TempDir dir;
	Result<RuntimeDir> opened = openRuntimeDir(dir.path());
	ASSERT_TRUE(opened);
	EXPECT_EQ(opened->path, dir / "file-restore");
	EXPECT_EQ(test::modeOf(dir / "file-restore") & 07777, 0700U);
	ASSERT_EQ(::chmod((dir / "file-restore").c_str(), 0755), 0);
	ASSERT_TRUE(openRuntimeDir(dir.path()));
	EXPECT_EQ(test::modeOf(dir / "file-restore") & 07777, 0700U);

	TempDir other;
	ASSERT_EQ(::symlink(dir.path().c_str(), (other / "file-restore").c_str()), 0);
	EXPECT_FALSE(openRuntimeDir(other.path()));
	if (::geteuid() == 0) {
		TempDir foreign;
		ASSERT_EQ(::mkdir((foreign / "file-restore").c_str(), 0700), 0);
		ASSERT_EQ(::chown((foreign / "file-restore").c_str(), 65534, 65534), 0);
		Result<RuntimeDir> refused = openRuntimeDir(foreign.path());
		ASSERT_FALSE(refused);
		EXPECT_EQ(refused.error().errnum(), EPERM);
	}
}

} // namespace
} // namespace fr::client
