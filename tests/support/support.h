// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// tests/support: what the helper's setuid tests and the client's end-to-end
// tests share. Link `fr_test_support_dep` (tests/support/meson.build).
//
// Privileged tests (suite 'privileged', run as root, non-parallel because
// they share the compiled-in paths below) follow this pattern:
//
//   TEST(Foo, Bar) {
//           if (std::string why = fr::test::privilegedSkipReason(); !why.empty())
//                   GTEST_SKIP() << why;
//           fr::test::HelperInstall install(fr::test::Variant::Probe);   // or RealQemu
//           install.setPolicy("allow everyone\n");                       // or removePolicy()
//           const fr::test::TestUser user = fr::test::testUser();
//           fr::test::RunOptions run;
//           run.path = install.helperPath();
//           run.argv = {install.helperPath(), "start", "--name", "x", ...};
//           run.user = user;
//           run.fds = {{3, ticketPipeReadEnd}, {4, logFd}};   // child fd <- parent fd
//           fr::test::RunResult r = fr::test::run(run);
//           EXPECT_EQ(r.exitCode, 0) << r.err;
//   }
//
// Test-only helper builds (tests/support/meson.build) differ from the real
// one only in their compiled-in paths:
//
//  Variant::Probe     FR_QEMU_BINARY = the probe (tests/support/probe.cpp),
//                     which records on its stdout (= the helper's --log-fd)
//                     its ids, groups, capability sets, NoNewPrivs, Seccomp,
//                     SigIgn/SigBlk, session, environment, fds and argv, then
//                     checks that the seccomp filter kills what it must.
//                     Its vsock device is simulated (/dev/null, CIDs below
//                     kProbeBusyCidsBelow answer EADDRINUSE).
//  Variant::RealQemu  FR_QEMU_BINARY = the real qemu-system-x86_64 (meson
//                     option qemu_binary), real /dev/vhost-vsock. For the
//                     client's end-to-end tests: install a guest image with
//                     install.installImage(vmlinuz, initramfs) (from the
//                     guest build: <builddir>/guest/{vmlinuz,initramfs.img}),
//                     point the client at install.helperPath() with
//                     FILE_RESTORE_HELPER, run the client as testUser().
//
// Each variant's compiled-in paths: policy at policyPath() (under /run, whose
// ancestors are root-owned and not writable by others, as the helper
// demands), image directory imageDir(), QEMU qemuBinary(). HelperInstall
// recreates all of it from nothing and removes it again in its destructor.
// The test users (testUser(), otherTestUser(), group kExtraGroup) are created
// with useradd on first use and stay on the machine.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fr::test {

// Non-empty: why privileged tests cannot run here (not root, test_root
// mounted nosuid, test_root not safely root-owned, ...). Tests GTEST_SKIP()
// with it.
std::string privilegedSkipReason();

// Non-empty: why an end-to-end test that boots the real guest cannot run
// here: privilegedSkipReason(), no guest image (vmlinuz, initramfs.img) in
// imageDir, or no QEMU at qemu.
std::string vmSkipReason(const std::string &imageDir, const std::string &qemu);

// Accounts for the tests, created (useradd/groupadd) when missing:
//   fr-test        the unprivileged caller; member of fr-test-extra
//   fr-test-other  another user (owner of files fr-test must not read)
inline constexpr const char *kTestUserName = "fr-test";
inline constexpr const char *kOtherUserName = "fr-test-other";
inline constexpr const char *kExtraGroup = "fr-test-extra";

struct TestUser {
	std::string name;
	uid_t uid = 0;
	gid_t gid = 0;
	std::vector<gid_t> groups; // supplementary groups (from the group database)
};
TestUser testUser();
TestUser otherTestUser();
gid_t extraGroupId();

// Runs a program and captures what it does.
struct RunOptions {
	std::string path;              // executed as is (no PATH lookup)
	std::vector<std::string> argv; // argv[0] included
	bool emptyArgv = false;        // execve with argv == {NULL} (argc 0)
	std::vector<std::string> env;  // the whole environment ("K=V")
	std::optional<TestUser> user;  // run with its uid, gid and groups
	std::string stdinData;         // fed through a pipe (else stdin is /dev/null)
	// {fd in the child, fd in this process}: dup'ed into place before exec,
	// without O_CLOEXEC. Every other fd of this process is closed.
	std::vector<std::pair<int, int>> fds;
	std::vector<int> closeFds;       // closed in the child right before exec (e.g. 0, 1, 2)
	std::function<void()> beforeExec; // runs in the child last (rlimits, signals); must not allocate much
	int timeoutSeconds = 120;        // killed (SIGKILL) after this
};
struct RunResult {
	int exitCode = -1;   // -1 when killed by a signal
	int termSignal = 0;  // the signal, if any
	bool timedOut = false;
	std::string out;
	std::string err;
};
RunResult run(const RunOptions &options);

// Convenience: runs argv[0] with argv as root with an empty environment
// except PATH; returns the result.
RunResult runCommand(const std::vector<std::string> &argv);

// Files (as root). writeFile creates or replaces (O_NOFOLLOW), then chowns
// and chmods.
void writeFile(const std::string &path, std::string_view content, mode_t mode = 0644,
	       uid_t uid = 0, gid_t gid = 0);
std::string readFile(const std::string &path);
void makeDir(const std::string &path, mode_t mode = 0755, uid_t uid = 0, gid_t gid = 0);
// rm -rf without following symlinks; a missing path is fine.
void removeTree(const std::string &path);
void copyFile(const std::string &from, const std::string &to, mode_t mode, uid_t uid = 0,
	      gid_t gid = 0);

// A pipe (both ends O_CLOEXEC). {read end, write end}; close them yourself.
std::pair<int, int> makePipe();
// A ticket: 64 lowercase hex digits, random.
std::string randomTicket();

// The test helper builds.
enum class Variant { Probe, RealQemu };

// CIDs below this answer EADDRINUSE in the probe variant's simulated vsock.
inline constexpr std::uint32_t kProbeBusyCidsBelow = 20;

class HelperInstall {
public:
	// Removes leftovers of an earlier run, then installs the variant's helper
	// (root:root 4755), its QEMU stand-in (probe variant) and an empty image
	// directory (the probe variant gets dummy vmlinuz/initramfs.img files).
	// No policy file is written: call setPolicy().
	explicit HelperInstall(Variant variant);
	~HelperInstall();
	HelperInstall(const HelperInstall &) = delete;
	HelperInstall &operator=(const HelperInstall &) = delete;

	Variant variant() const { return variant_; }
	const std::string &helperPath() const { return helperPath_; }
	// A directory for the test's own files (root:root 0755), removed afterwards.
	std::string scratchDir() const;

	// The compiled-in paths of this variant.
	std::string policyPath() const;
	std::string imageDir() const;
	std::string qemuBinary() const;

	// Writes the policy (root:root 0644 unless told otherwise).
	void setPolicy(std::string_view text, mode_t mode = 0644, uid_t uid = 0, gid_t gid = 0);
	void removePolicy();
	// Copies a guest image (kernel, initramfs) into imageDir() (root 0644).
	void installImage(const std::string &vmlinuz, const std::string &initramfs);

private:
	Variant variant_;
	std::string base_;
	std::string policyDir_;
	std::string helperPath_;
};

// What every end-to-end test of the real client sets up first: the real
// helper installed setuid with QEMU (policy: everyone, TCG, 8 VMs) and the
// guest image from imageDir, the unprivileged test user, a runtime
// directory of theirs (/run/fr-<tag>-<pid>: short, because the serial
// transport's socket path must fit 108 bytes, as under /run/user/<uid>;
// test_root paths are long), a repository and a directory of the user's
// for extraction targets.
struct ClientWorld {
	std::unique_ptr<HelperInstall> install;
	TestUser user;
	std::string scratch; // the install's scratch directory
	std::string runtime; // XDG_RUNTIME_DIR
	std::string repo;    // scratch/repo (root 0755)
	std::string targets; // scratch/home (the user's)
};
void setUpClientWorld(ClientWorld &world, const std::string &imageDir, const std::string &tag);

// Non-empty: why the test user cannot make FUSE mounts here (no /dev/fuse,
// no setuid fusermount3). Tests of `mount` skip with it.
std::string fuseSkipReason();
// Whether something is mounted on mountpoint (this mount namespace).
bool isMounted(const std::string &mountpoint);

} // namespace fr::test
