// SPDX-License-Identifier: AGPL-3.0-or-later
//
// The NBD server end to end without a VM: Debian's nbdkit with our plugin,
// started by startNbdServer() on a socketpair, read by QEMU's own NBD
// client (qemu-img, qemu-io) through the other end passed as an fd, which
// is how QEMU gets it from the helper ({"driver":"nbd","server":
// {"type":"fd","str":"N"}}).

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "client/pbs/datastore.h"
#include "client/pbs/nbd_server.h"
#include "client/pbs/sandbox.h"
#include "shared/landlock.h"
#include "tests/pbs/datastore_writer.h"
#include "tests/pbs/test_util.h"

namespace fr::pbs {
namespace {

constexpr std::uint64_t kChunk = 64 << 10;

struct Output {
	int status = -1;
	std::string text;
};

// Runs argv with `fd` as its fd 3, stdout and stderr captured, bounded in
// time (a hang is a failure, not a stuck test).
Output runWithFd(const std::vector<std::string> &args, int fd, int timeoutSeconds = 60)
{
	int pipeFds[2];
	EXPECT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
	// Above 3, so that the dup2 below always happens (and clears
	// FD_CLOEXEC on the child's copy).
	const UniqueFd high(::fcntl(fd, F_DUPFD_CLOEXEC, 10));
	fd = high.get();
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, fd, 3);
	posix_spawn_file_actions_adddup2(&actions, pipeFds[1], 1);
	posix_spawn_file_actions_adddup2(&actions, pipeFds[1], 2);
	std::vector<char *> argv;
	for (const std::string &a : args)
		argv.push_back(const_cast<char *>(a.c_str()));
	argv.push_back(nullptr);
	pid_t pid = -1;
	const int rc = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
	posix_spawn_file_actions_destroy(&actions);
	::close(pipeFds[1]);
	Output out;
	if (rc != 0) {
		::close(pipeFds[0]);
		return out;
	}
	const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSeconds);
	char buf[4096];
	for (;;) {
		pollfd p{pipeFds[0], POLLIN, 0};
		if (::poll(&p, 1, 200) > 0) {
			const ssize_t n = ::read(pipeFds[0], buf, sizeof(buf));
			if (n <= 0)
				break;
			out.text.append(buf, static_cast<std::size_t>(n));
		}
		if (std::chrono::steady_clock::now() > deadline) {
			::kill(pid, SIGKILL);
			out.text += "\n[timed out]";
			break;
		}
	}
	::close(pipeFds[0]);
	::waitpid(pid, &out.status, 0);
	return out;
}

std::string readAll(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool processGone(pid_t pid, int waitMs)
{
	for (int i = 0; i < waitMs / 10; ++i) {
		int status = 0;
		if (::waitpid(pid, &status, WNOHANG) == pid)
			return true;
		::usleep(10000);
	}
	return false;
}

class NbdServerTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		if (::access(nbdkitBinaryPath().c_str(), X_OK) != 0)
			GTEST_SKIP() << nbdkitBinaryPath() << " is not installed (Debian: nbdkit)";
		if (::access(nbdkitPluginPath().c_str(), R_OK) != 0)
			GTEST_SKIP() << "the plugin " << nbdkitPluginPath() << " is not built";
		if (landlock::abi() <= 0)
			GTEST_SKIP() << "no Landlock: the server refuses to start";
		root_ = dir_ / "store";
		Result<test::DatastoreWriter> writer = test::DatastoreWriter::create(root_);
		ASSERT_TRUE(writer);
		disk_ = test::patternBytes(7 * kChunk + 512, 11); // the last chunk is short
		Key key;
		key.fill(0x5a);
		crypt_ = *CryptConfig::create(key);
		key_ = key;
		plainId_ = *parseSnapshotId("vm/100/2026-11-25T10:00:00Z", "");
		encId_ = *parseSnapshotId("vm/101/2026-11-25T10:00:00Z", "team");
		Result<ManifestFile> plain = writer->addImage(plainId_, "drive-scsi0.img.fidx", disk_,
							      {kChunk, true, nullptr});
		ASSERT_TRUE(plain);
		ASSERT_TRUE(writer->finishSnapshot(plainId_, {*plain}, nullptr));
		Result<ManifestFile> enc = writer->addImage(encId_, "drive-scsi0.img.fidx", disk_,
							    {kChunk, true, &*crypt_});
		ASSERT_TRUE(enc);
		ASSERT_TRUE(writer->finishSnapshot(encId_, {*enc}, &*crypt_));
		logPath_ = dir_ / "server.log";
		log_.reset(::open(logPath_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
		ASSERT_TRUE(log_.isValid());
	}

	NbdServerSpec specFor(const SnapshotId &id, bool encrypted)
	{
		Result<Snapshot> snapshot = openSnapshot(root_, id);
		EXPECT_TRUE(snapshot);
		const ImageArchive &image = snapshot->images.at(0);
		NbdServerSpec spec;
		spec.datastore = root_;
		spec.indexPath = id.path() + "/" + image.name;
		spec.csum = image.csum;
		spec.size = image.size;
		spec.encrypted = encrypted;
		if (encrypted)
			spec.key = key_;
		spec.logFd = log_.get();
		return spec;
	}

	std::string imageOpts() const { return "driver=nbd,server.type=fd,server.str=3"; }

	test::TempDir dir_;
	std::string root_;
	Bytes disk_;
	std::optional<CryptConfig> crypt_;
	Key key_{};
	SnapshotId plainId_;
	SnapshotId encId_;
	std::string logPath_;
	UniqueFd log_;
};

TEST_F(NbdServerTest, QemuReadsTheWholeDiskPlainAndEncrypted)
{
	for (const bool encrypted : {false, true}) {
		SCOPED_TRACE(encrypted ? "encrypted" : "plain");
		Result<NbdServer> server =
			startNbdServer(specFor(encrypted ? encId_ : plainId_, encrypted),
				       std::chrono::seconds(20));
		ASSERT_TRUE(server) << server.error().message() << "\n" << readAll(logPath_);
		const std::string out = dir_ / (encrypted ? "enc.raw" : "plain.raw");
		Output o = runWithFd({"qemu-img", "convert", "--image-opts", imageOpts(), "-O", "raw",
				      out},
				     server->socket.get());
		server->socket.reset();
		EXPECT_EQ(o.status, 0) << o.text << readAll(logPath_);
		const std::string got = readAll(out);
		ASSERT_EQ(got.size(), disk_.size());
		EXPECT_EQ(std::memcmp(got.data(), disk_.data(), disk_.size()), 0);
		// QEMU closed its end: the server is gone too.
		EXPECT_TRUE(processGone(server->pid, 5000));
	}
}

TEST_F(NbdServerTest, ServerIsConfined)
{
	Result<NbdServer> server = startNbdServer(specFor(plainId_, false), std::chrono::seconds(20));
	ASSERT_TRUE(server) << readAll(logPath_);
	const std::string status = readAll("/proc/" + std::to_string(server->pid) + "/status");
	EXPECT_NE(status.find("NoNewPrivs:\t1"), std::string::npos) << status;
	EXPECT_NE(status.find("Seccomp:\t2"), std::string::npos) << status;
	// Its own session: a ^C in the client's terminal does not reach it.
	EXPECT_EQ(::getsid(server->pid), server->pid);
	server->socket.reset();
	EXPECT_TRUE(processGone(server->pid, 5000));
}

// The client call that starts a server exits long before the VM stops
// using it (nbdkit --single would take SIGTERM with its parent).
TEST_F(NbdServerTest, ServerOutlivesTheProcessThatStartedIt)
{
	int pair[2];
	ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
	UniqueFd ours(pair[0]);
	const NbdServerSpec spec = specFor(plainId_, false);
	const pid_t child = ::fork();
	if (child == 0) {
		Result<NbdServer> server = startNbdServer(spec, std::chrono::seconds(20));
		if (!server)
			::_exit(1);
		// Hand the socket over (SCM_RIGHTS) and exit at once.
		char byte = 'x';
		iovec iov{&byte, 1};
		alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
		msghdr msg{};
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = control;
		msg.msg_controllen = sizeof(control);
		cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		const int fd = server->socket.get();
		std::memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		::_exit(::sendmsg(pair[1], &msg, 0) == 1 ? 0 : 2);
	}
	::close(pair[1]);
	int status = 0;
	ASSERT_EQ(::waitpid(child, &status, 0), child);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << readAll(logPath_);
	char byte = 0;
	iovec iov{&byte, 1};
	alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
	msghdr msg{};
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control;
	msg.msg_controllen = sizeof(control);
	ASSERT_EQ(::recvmsg(ours.get(), &msg, MSG_CMSG_CLOEXEC), 1);
	int received = -1;
	std::memcpy(&received, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof(int));
	UniqueFd socket(received);
	::usleep(300000); // a SIGTERM from the parent's death would have landed
	const std::string out = dir_ / "after-parent.raw";
	Output o = runWithFd({"qemu-img", "convert", "--image-opts", imageOpts(), "-O", "raw", out},
			     socket.get());
	socket.reset();
	ASSERT_EQ(o.status, 0) << o.text << readAll(logPath_);
	const std::string got = readAll(out);
	ASSERT_EQ(got.size(), disk_.size());
	EXPECT_EQ(std::memcmp(got.data(), disk_.data(), disk_.size()), 0);
}

TEST_F(NbdServerTest, CorruptChunkIsAnIoErrorForItsRangeOnly)
{
	Result<test::DatastoreWriter> writer = test::DatastoreWriter::create(root_);
	Result<std::vector<Digest>> digests = writer->indexDigests(plainId_, "drive-scsi0.img.fidx");
	ASSERT_TRUE(digests);
	ASSERT_TRUE(writer->flipPayloadByte((*digests)[2]));
	Result<NbdServer> server = startNbdServer(specFor(plainId_, false), std::chrono::seconds(20));
	ASSERT_TRUE(server) << readAll(logPath_);
	const auto start = std::chrono::steady_clock::now();
	// One connection, three reads: before, inside and after the chunk.
	Output o = runWithFd({"qemu-io", "-r", "--image-opts", imageOpts(), "-c",
			      "read 0 " + std::to_string(kChunk), "-c",
			      "read " + std::to_string(2 * kChunk + 4096) + " 4096", "-c",
			      "read " + std::to_string(3 * kChunk) + " " + std::to_string(kChunk)},
			     server->socket.get());
	server->socket.reset();
	EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
	// Two reads succeed ("read N/N bytes"), the middle one fails with EIO.
	std::size_t okReads = 0;
	for (std::size_t at = o.text.find("read "); at != std::string::npos;
	     at = o.text.find("read ", at + 1))
		if (o.text.compare(at, 8, "read 655") == 0 || o.text.compare(at, 9, "read 4096") == 0)
			++okReads;
	EXPECT_NE(o.text.find("Input/output error"), std::string::npos) << o.text;
	EXPECT_EQ(okReads, 2u) << o.text;
	const std::string log = readAll(logPath_);
	EXPECT_NE(log.find(hex((*digests)[2])), std::string::npos) << log;
	EXPECT_NE(log.find("CRC"), std::string::npos) << log;
	EXPECT_TRUE(processGone(server->pid, 5000));
}

TEST_F(NbdServerTest, IndexNotMatchingTheManifestDoesNotStart)
{
	NbdServerSpec spec = specFor(plainId_, false);
	spec.csum[0] ^= 1;
	Result<NbdServer> server = startNbdServer(spec, std::chrono::seconds(20));
	ASSERT_FALSE(server);
	EXPECT_EQ(server.error().errnum(), EIO);
	EXPECT_NE(readAll(logPath_).find("does not match the manifest"), std::string::npos)
		<< readAll(logPath_);
}

TEST_F(NbdServerTest, WrongKeyServesNothingButErrors)
{
	NbdServerSpec spec = specFor(encId_, true);
	spec.key->fill(0x5b);
	Result<NbdServer> server = startNbdServer(spec, std::chrono::seconds(20));
	ASSERT_TRUE(server) << readAll(logPath_);
	Output o = runWithFd({"qemu-io", "-r", "--image-opts", imageOpts(), "-c", "read 0 512"},
			     server->socket.get());
	server->socket.reset();
	EXPECT_NE(o.text.find("Input/output error"), std::string::npos) << o.text;
	EXPECT_NE(readAll(logPath_).find("authentication failed"), std::string::npos)
		<< readAll(logPath_);
}

TEST(NbdServerArgv, KeyOnlyByFd)
{
	NbdServerSpec spec;
	spec.datastore = "/store";
	spec.indexPath = "vm/1/2026-11-25T10:00:00Z/drive-scsi0.img.fidx";
	spec.size = 42;
	spec.encrypted = true;
	spec.key = Key{};
	spec.key->fill(0xab);
	const std::vector<std::string> argv = nbdServerArgv("/usr/bin/nbdkit", "/p.so", spec);
	EXPECT_EQ(argv[1], "--single");
	EXPECT_EQ(argv[2], "--readonly");
	bool keyFd = false;
	for (const std::string &a : argv) {
		EXPECT_EQ(a.find("abab"), std::string::npos) << a; // never the key itself
		keyFd = keyFd || a == "key-fd=3";
	}
	EXPECT_TRUE(keyFd);
}

} // namespace
} // namespace fr::pbs
