// SPDX-License-Identifier: AGPL-3.0-or-later
// Proving a pid is still our QEMU (start time + marker) before signalling.
#include "client/process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include <fstream>

#include <gtest/gtest.h>

#include "shared/helper_contract.h"

namespace fr::client {
namespace {

using namespace std::string_literals;

TEST(Process, ParsesStartTimeAfterTheLastParenthesis)
{
	std::string stat = "1234 (qemu-system-x86) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 "
			   "98765 1000 10 18446744073709551615\n";
	EXPECT_EQ(*parseStatStartTime(stat), 98765U);
	// A command name with spaces and ") " in it cannot shift the fields.
	stat = "1234 (evil) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 666) S 1 1234 1234 0 -1 "
	       "4194560 1 0 0 0 0 0 0 0 20 0 1 0 55555 1000\n";
	EXPECT_EQ(*parseStatStartTime(stat), 55555U);
	EXPECT_FALSE(parseStatStartTime("1234 (x) S 1 2"));
	EXPECT_FALSE(parseStatStartTime("no parenthesis"));
	EXPECT_FALSE(parseStatStartTime("1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 12a3 1"));
	EXPECT_FALSE(parseStatStartTime("1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -5 1"));
}

TEST(Process, FindsTheMarkerOnlyAfterDashName)
{
	const std::string cmdline = "qemu-system-x86_64\0-nodefaults\0-name\0guest=file-restore:qemu_x,"
				    "debug-threads=on\0-m\0256\0"s;
	EXPECT_TRUE(cmdlineHasMarker(cmdline, "qemu_x"));
	EXPECT_FALSE(cmdlineHasMarker(cmdline, "qemu_"));   // prefix of the name
	EXPECT_FALSE(cmdlineHasMarker(cmdline, "qemu_x,d")); // not a name boundary
	EXPECT_TRUE(cmdlineHasMarker("q\0-name\0guest=file-restore:a\\x2db"s, "a\\x2db"));
	// Elsewhere than after -name (e.g. a path) it proves nothing.
	EXPECT_FALSE(cmdlineHasMarker("sh\0-c\0guest=file-restore:qemu_x\0"s, "qemu_x"));
	EXPECT_FALSE(cmdlineHasMarker("q\0-name\0other,guest=file-restore:qemu_x\0"s, "qemu_x"));
	EXPECT_FALSE(cmdlineHasMarker(""s, "qemu_x"));
}

// A process carrying the marker: the fake helper's QEMU mode, which waits
// without children of its own.
pid_t spawnMarked(const std::string &vmName, const char *mode = "mute")
{
	const char *fake = std::getenv("FAKE_HELPER");
	const pid_t pid = ::fork();
	if (pid == 0) {
		const std::string marker = contract::qemuNameArgument(vmName);
		::execl(fake, fake, "-name", marker.c_str(), "--mode", mode, nullptr);
		_exit(127);
	}
	// Until exec is done the child's cmdline is ours.
	for (int i = 0; i < 200; ++i) {
		Result<std::uint64_t> started = readStartTime(pid);
		Result<VerifiedProcess> v = verifyProcess(pid, started ? *started : 0, vmName);
		if (v && v->state == ProcessState::Ours)
			break;
		::usleep(10000);
	}
	return pid;
}

TEST(Process, VerifiesAndTerminatesOnlyTheRightProcess)
{
	const pid_t pid = spawnMarked("qemu_test");
	const std::uint64_t started = *readStartTime(pid);

	Result<VerifiedProcess> ours = verifyProcess(pid, started, "qemu_test");
	ASSERT_TRUE(ours);
	EXPECT_EQ(ours->state, ProcessState::Ours);
	EXPECT_TRUE(ours->pidfd.isValid());
	EXPECT_EQ(verifyProcess(pid, started + 1, "qemu_test")->state, ProcessState::Foreign);
	// The same process, but not that VM's QEMU.
	EXPECT_EQ(verifyProcess(pid, started, "qemu_other")->state, ProcessState::Unmarked);
	EXPECT_FALSE(terminateVerified(pid, started, "qemu_other", std::chrono::seconds(1)));

	// A foreign identity is never signalled.
	Status refused = terminateVerified(pid, started + 1, "qemu_test", std::chrono::seconds(1));
	ASSERT_FALSE(refused);
	EXPECT_EQ(refused.error().errnum(), EPERM);
	EXPECT_EQ(::kill(pid, 0), 0);

	ASSERT_TRUE(terminateVerified(pid, started, "qemu_test", std::chrono::seconds(2)));
	int status = 0;
	ASSERT_EQ(::waitpid(pid, &status, 0), pid);
	EXPECT_TRUE(WIFSIGNALED(status));
	// Gone: nothing to do, and that is success.
	EXPECT_EQ(verifyProcess(pid, started, "qemu_test")->state, ProcessState::Gone);
	EXPECT_TRUE(terminateVerified(pid, started, "qemu_test", std::chrono::seconds(1)));
}

TEST(Process, KillsWhatIgnoresSigterm)
{
	const pid_t pid = spawnMarked("qemu_stubborn", "stubborn");
	const std::uint64_t started = *readStartTime(pid);
	// Wait until it really ignores SIGTERM (a sleep is not enough on a
	// loaded machine or under a sanitizer).
	bool ignoring = false;
	for (int i = 0; i < 500 && !ignoring; ++i) {
		std::ifstream status("/proc/" + std::to_string(pid) + "/status");
		std::string line;
		while (std::getline(status, line))
			if (line.rfind("SigIgn:", 0) == 0)
				ignoring = (std::stoull(line.substr(7), nullptr, 16) >> (SIGTERM - 1)) & 1U;
		if (!ignoring)
			::usleep(10000);
	}
	ASSERT_TRUE(ignoring);
	ASSERT_TRUE(terminateVerified(pid, started, "qemu_stubborn", std::chrono::milliseconds(300)));
	int status = 0;
	ASSERT_EQ(::waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

TEST(Process, FindsOurQemusByMarker)
{
	const pid_t pid = spawnMarked("qemu_findme");
	bool found = false;
	for (const QemuProcess &q : findOurQemus())
		if (q.pid == pid && q.vmName == "qemu_findme")
			found = true;
	EXPECT_TRUE(found);
	EXPECT_FALSE(fdTarget(pid, 0).empty());
	::kill(pid, SIGKILL);
	::waitpid(pid, nullptr, 0);
}

} // namespace
} // namespace fr::client
