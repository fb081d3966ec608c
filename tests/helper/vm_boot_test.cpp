// SPDX-License-Identifier: AGPL-3.0-or-later
// Boots a real VM through the installed helper (the real-QEMU test build):
// Debian's QEMU under TCG, the guest kernel reopened by QEMU through
// /proc/self/fd, the initramfs memfd with the ticket appended, the console
// on --log-fd, and QEMU ending by itself when the guest powers off.
//
// The kernel is the guest image's (this build's image_dir/vmlinuz), or the
// file named by $FR_TEST_KERNEL; without one the test skips. The initramfs
// is built here around a static /init (guest_init.c) that prints what it
// finds, so this test does not depend on the guest daemon.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "fr_config.h"
#include "shared/host_tsc.h"
#include "tests/support/support.h"

namespace fr::test {
namespace {

std::string kernelPath()
{
	if (const char *k = std::getenv("FR_TEST_KERNEL"); k != nullptr && *k != '\0')
		return k;
	return std::string(FR_IMAGE_DIR) + "/vmlinuz";
}

bool alive(int pid)
{
	return ::kill(pid, 0) == 0;
}

TEST(VmBoot, HelperStartsRealQemuWhichBootsTheKernelWithTheTicket)
{
	if (std::string why = privilegedSkipReason(); !why.empty())
		GTEST_SKIP() << why;
	const std::string kernel = kernelPath();
	if (::access(kernel.c_str(), R_OK) != 0)
		GTEST_SKIP() << "no guest kernel at " << kernel << " (build the guest image or set FR_TEST_KERNEL)";
	if (::access("/usr/bin/qemu-system-x86_64", X_OK) != 0 || ::access("/usr/bin/cpio", X_OK) != 0)
		GTEST_SKIP() << "needs qemu-system-x86_64 and cpio";

	HelperInstall install(Variant::RealQemu);
	const TestUser user = testUser();
	const std::string dir = install.scratchDir() + "/vm";
	makeDir(dir, 0755, user.uid, user.gid);
	// The initramfs: a newc archive holding only /init.
	makeDir(dir + "/root", 0755);
	copyFile(FR_TEST_GUEST_INIT, dir + "/root/init", 0755);
	RunResult cpio = runCommand({"/bin/sh", "-c", "cd " + dir + "/root && echo init | cpio -o -H newc --quiet > ../initramfs.img"});
	ASSERT_EQ(cpio.exitCode, 0) << cpio.err;
	install.installImage(kernel, dir + "/initramfs.img");
	install.setPolicy("allow everyone\n");
	writeFile(dir + "/disk.raw", std::string(1 << 20, '\0'), 0644, user.uid, user.gid);
	// Issue 11, finding 2: a raw image whose first sector a guest filled
	// with a VMDK descriptor. As raw (its name says so) it is only bytes;
	// probed or passed as vmdk, QEMU would open /etc/passwd as its extent.
	std::string evil = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
			   "createType=\"monolithicFlat\"\nRW 8 FLAT \"/etc/passwd\" 0\n";
	evil.resize(1 << 20, '\0');
	writeFile(dir + "/evil.img", evil, 0644, user.uid, user.gid);

	const std::string ticket = randomTicket();
	auto [ticketRead, ticketWrite] = makePipe();
	ASSERT_EQ(::write(ticketWrite, ticket.data(), ticket.size()), 64);
	::close(ticketWrite);
	const std::string logPath = dir + "/console.log";
	const int log = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ASSERT_GE(log, 0);
	ASSERT_EQ(::fchown(log, user.uid, user.gid), 0);
	RunOptions options;
	options.path = install.helperPath();
	options.argv = {install.helperPath(), "start", "--name", "vm-boot-test", "--transport", "serial",
			"--socket", dir + "/vm.sock", "--timeout", "60", "--tsc-khz", std::to_string(hostTscKhz().value_or(2000000)), "--ticket-fd", "3", "--log-fd", "4",
			"--image", "raw:" + dir + "/disk.raw", "--image", "raw:" + dir + "/evil.img"};
	options.user = user;
	options.fds = {{3, ticketRead}, {4, log}};
	const auto start = std::chrono::steady_clock::now();
	RunResult r = run(options);
	::close(ticketRead);
	::close(log);
	ASSERT_EQ(r.exitCode, 0) << r.err;
	ASSERT_EQ(r.out.rfind("{\"pid\":", 0), 0U) << r.out;
	EXPECT_NE(r.out.find(",\"cid\":null}"), std::string::npos);
	const int pid = std::stoi(r.out.substr(7));

	// QEMU was reparented when the helper exited: poll until it is gone,
	// and meanwhile look at every fd it holds. Only what the helper passed
	// may name a file (QEMU's own eventfds, pipes and sockets aside, and
	// the libraries, modules and firmware it loads from /usr).
	const std::set<std::string> passed = {"/dev/null", logPath, install.imageDir() + "/vmlinuz",
					      dir + "/disk.raw", dir + "/evil.img"};
	std::set<std::string> seen;
	while (alive(pid) && std::chrono::steady_clock::now() - start < std::chrono::seconds(90)) {
		const std::string fdDir = "/proc/" + std::to_string(pid) + "/fd";
		if (DIR *d = ::opendir(fdDir.c_str())) {
			while (const dirent *e = ::readdir(d)) {
				char target[4096];
				const ssize_t n = ::readlink((fdDir + "/" + e->d_name).c_str(), target, sizeof(target) - 1);
				if (e->d_name[0] != '.' && n > 0)
					seen.insert(std::string(target, static_cast<std::size_t>(n)));
			}
			::closedir(d);
		}
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
	}
	EXPECT_GT(seen.count(dir + "/evil.img"), 0U) << "the fds were never seen";
	for (const std::string &target : seen) {
		EXPECT_EQ(target.find("passwd"), std::string::npos) << "QEMU held " << target;
		if (target.rfind('/', 0) == 0 && target.rfind("/memfd:", 0) != 0 && target.rfind("/usr/", 0) != 0) {
			EXPECT_EQ(passed.count(target), 1U) << "QEMU held " << target;
		}
	}
	const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
	const bool stillRunning = alive(pid);
	if (stillRunning)
		::kill(pid, SIGKILL);
	// The serial console writes "\r\n".
	std::string console = readFile(logPath);
	std::erase(console, '\r');
	EXPECT_FALSE(stillRunning) << "QEMU did not exit after the guest powered off\n" << console;
	EXPECT_NE(console.find("FR-GUEST ticket=" + ticket + "\n"), std::string::npos) << console;
	EXPECT_NE(console.find("FR-GUEST ticket-mode=400 uid=0\n"), std::string::npos) << console;
	EXPECT_NE(console.find("fr.idle=60 fr.transport=serial"), std::string::npos) << console;
	EXPECT_NE(console.find("tsc_early_khz="), std::string::npos) << console;
	EXPECT_NE(console.find("FR-GUEST done"), std::string::npos) << console;
	EXPECT_EQ(console.find("Kernel panic"), std::string::npos) << console;
	std::printf("boot to power-off through the helper: %.2f s\n", seconds);
}

} // namespace
} // namespace fr::test
