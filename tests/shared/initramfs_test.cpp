// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/initramfs.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "shared/guest_abi.h"
#include "tests/support/support.h"

namespace fr {
namespace {

const std::string kTicket(64, 'a');

std::string readAllFrom(int fd)
{
	std::string out;
	char buf[4096];
	off_t at = 0;
	ssize_t n;
	while ((n = ::pread(fd, buf, sizeof(buf), at)) > 0) {
		out.append(buf, static_cast<std::size_t>(n));
		at += n;
	}
	return out;
}

TEST(TicketArchive, IsANewcArchiveAlignedAfterTheBase)
{
	for (std::size_t base : {0U, 1U, 2U, 3U, 4U, 1021U}) {
		const std::string tail = ticketArchive(kTicket, base);
		const std::size_t pad = (4 - base % 4) % 4;
		ASSERT_GT(tail.size(), pad);
		EXPECT_EQ(tail.substr(0, pad), std::string(pad, '\0'));
		EXPECT_EQ(tail.substr(pad, 6), "070701") << base;
		EXPECT_EQ((base + tail.size()) % 4, 0U);
		// The ticket file: mode 0100400, uid 0, gid 0, 64 bytes, name "ticket".
		const std::string header = tail.substr(pad, 110);
		EXPECT_EQ(header.substr(14, 8), "00008100");
		EXPECT_EQ(header.substr(22, 16), "0000000000000000");
		EXPECT_EQ(header.substr(54, 8), "00000040");
		EXPECT_EQ(tail.substr(pad + 110, 7), std::string("ticket\0", 7));
		EXPECT_NE(tail.find(kTicket), std::string::npos);
		EXPECT_NE(tail.find(std::string("TRAILER!!!\0", 11)), std::string::npos);
	}
}

TEST(TicketArchive, GnuCpioReadsIt)
{
	if (::access("/usr/bin/cpio", X_OK) != 0)
		GTEST_SKIP() << "no /usr/bin/cpio";
	const std::string dir = ::testing::TempDir() + "/fr-initramfs-test";
	test::removeTree(dir);
	test::makeDir(dir, 0700, ::getuid(), ::getgid());
	test::writeFile(dir + "/a.cpio", ticketArchive(kTicket, 0), 0600, ::getuid(), ::getgid());
	test::RunResult r = test::runCommand(
		{"/bin/sh", "-c", "cd " + dir + " && cpio -i --quiet --no-absolute-filenames < a.cpio && stat -c %a:%s ticket && cat ticket"});
	EXPECT_EQ(r.exitCode, 0) << r.err;
	EXPECT_EQ(r.out, "400:64\n" + kTicket);
	test::removeTree(dir);
}

TEST(BuildInitramfs, CopiesBaseAppendsTicketSealsAndIsReadOnly)
{
	const int base = ::memfd_create("base", MFD_CLOEXEC);
	ASSERT_GE(base, 0);
	const std::string baseBytes = "\x28\xb5\x2f\xfd compressed-ish base of odd size";
	ASSERT_EQ(::write(base, baseBytes.data(), baseBytes.size()), static_cast<ssize_t>(baseBytes.size()));
	ASSERT_EQ(::lseek(base, 0, SEEK_SET), 0);
	Result<UniqueFd> built = buildInitramfs(base, kTicket);
	::close(base);
	ASSERT_TRUE(built) << built.error().message();
	const int fd = built->get();
	EXPECT_EQ(readAllFrom(fd), baseBytes + ticketArchive(kTicket, baseBytes.size()));
	EXPECT_EQ(::fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	const int seals = ::fcntl(fd, F_GET_SEALS);
	EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL),
		  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	// Even a writable reopening cannot change it.
	const std::string self = "/proc/self/fd/" + std::to_string(fd);
	const int rw = ::open(self.c_str(), O_RDWR | O_CLOEXEC);
	if (rw >= 0) {
		EXPECT_LT(::write(rw, "x", 1), 0);
		EXPECT_EQ(errno, EPERM);
		EXPECT_NE(::ftruncate(rw, 1), 0);
		::close(rw);
	}
	EXPECT_EQ(::fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

TEST(BuildInitramfs, ReadErrorsAreReported)
{
	Result<UniqueFd> built = buildInitramfs(-1, kTicket);
	ASSERT_FALSE(built);
	EXPECT_EQ(built.error().message(), "read(initramfs.img): Bad file descriptor");
}

} // namespace
} // namespace fr
