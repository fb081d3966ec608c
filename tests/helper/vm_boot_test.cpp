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
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>

#include "fr_config.h"
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
			"--socket", dir + "/vm.sock", "--timeout", "60", "--ticket-fd", "3", "--log-fd", "4",
			"--image", "raw:" + dir + "/disk.raw"};
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

	// QEMU was reparented when the helper exited: poll until it is gone.
	while (alive(pid) && std::chrono::steady_clock::now() - start < std::chrono::seconds(90))
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
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
