// SPDX-License-Identifier: AGPL-3.0-or-later
// Golden tests: the complete QEMU command line for typical starts. A change
// here is a change to what every VM runs with; review it as such.
#include "shared/qemu_command.h"

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace fr {
namespace {

// The helper's fds (made-up numbers): QEMU's layout is built from them.
QemuFds fds(int images)
{
	QemuFds f{100, 101, 102, 103, 104, {}};
	for (int i = 0; i < images; ++i)
		f.images.push_back(200 + i);
	return f;
}

TEST(QemuCommand, KernelCmdlineUnderTcg)
{
	EXPECT_EQ(buildKernelCmdline(600, Transport::Serial, 2500000),
		  "console=ttyS0 quiet panic=-1 cryptomgr.notests pci=off mitigations=off "
		  "tsc_early_khz=2500000 fr.idle=600 fr.transport=serial");
	EXPECT_EQ(buildKernelCmdline(30, Transport::Vsock, std::nullopt),
		  "console=ttyS0 quiet panic=-1 cryptomgr.notests pci=off mitigations=off "
		  "fr.idle=30 fr.transport=vsock");
}

TEST(QemuCommand, GoldenSerialTcgTwoDisks)
{
	QemuConfig c;
	c.qemuBinary = "/usr/bin/qemu-system-x86_64";
	c.name = "qemu_backup-vm-100-2026\\x2d11";
	c.kvm = false;
	c.memoryMiB = 256;
	c.kernelCmdline = buildKernelCmdline(600, Transport::Serial, 2500000);
	c.transport = Transport::Serial;
	c.formats = {ImageFormat::Qcow2, ImageFormat::Raw};
	const std::vector<std::string> expected = {
		"/usr/bin/qemu-system-x86_64",
		"-name", "guest=file-restore:qemu_backup-vm-100-2026\\x2d11",
		"-machine", "microvm",
		"-accel", "tcg",
		"-m", "256",
		"-smp", "1",
		"-nodefaults", "-no-user-config",
		"-nic", "none",
		"-display", "none",
		"-monitor", "none",
		"-no-reboot",
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"-serial", "stdio",
		"-kernel", "/proc/self/fd/3",
		"-initrd", "/proc/self/fd/4",
		"-append", "console=ttyS0 quiet panic=-1 cryptomgr.notests pci=off mitigations=off "
			   "tsc_early_khz=2500000 fr.idle=600 fr.transport=serial",
		"-add-fd", "fd=6,set=0",
		"-blockdev", "{\"driver\":\"qcow2\",\"node-name\":\"frdisk0\",\"read-only\":true,"
			     "\"backing\":null,\"file\":{\"driver\":\"file\",\"filename\":\"/dev/fdset/0\","
			     "\"read-only\":true}}",
		"-device", "virtio-blk-device,drive=frdisk0,serial=frdisk0,scsi=off",
		"-add-fd", "fd=7,set=1",
		"-blockdev", "{\"driver\":\"raw\",\"node-name\":\"frdisk1\",\"read-only\":true,"
			     "\"file\":{\"driver\":\"file\",\"filename\":\"/dev/fdset/1\",\"read-only\":true}}",
		"-device", "virtio-blk-device,drive=frdisk1,serial=frdisk1,scsi=off",
		"-chardev", "socket,id=frchannel,fd=5,server=on,wait=off",
		"-device", "virtio-serial-device",
		"-device", "virtserialport,chardev=frchannel,name=org.file-restore.0",
	};
	const QemuCommand cmd = buildQemuCommand(c, fds(2));
	EXPECT_EQ(cmd.argv, expected);
	// Each fd sits where its argument says: 3 kernel, 4 initrd, 5 channel, 6.. images.
	EXPECT_EQ(cmd.fds, (std::vector<int>{100, 101, 101, 102, 103, 104, 200, 201}));
}

TEST(QemuCommand, GoldenVsockKvm)
{
	QemuConfig c;
	c.qemuBinary = "/usr/bin/qemu-system-x86_64";
	c.name = "n";
	c.kvm = true;
	c.memoryMiB = 1024;
	c.kernelCmdline = "k";
	c.transport = Transport::Vsock;
	c.cid = 4242;
	c.formats = {ImageFormat::Vmdk};
	const std::vector<std::string> argv = buildQemuCommand(c, fds(1)).argv;
	const std::vector<std::string> expectedTail = {
		"-add-fd", "fd=6,set=0",
		"-blockdev", "{\"driver\":\"vmdk\",\"node-name\":\"frdisk0\",\"read-only\":true,"
			     "\"backing\":null,\"file\":{\"driver\":\"file\",\"filename\":\"/dev/fdset/0\","
			     "\"read-only\":true}}",
		"-device", "virtio-blk-device,drive=frdisk0,serial=frdisk0,scsi=off",
		"-device", "vhost-vsock-device,guest-cid=4242,vhostfd=5",
	};
	ASSERT_GE(argv.size(), expectedTail.size());
	EXPECT_EQ(std::vector<std::string>(argv.end() - static_cast<long>(expectedTail.size()), argv.end()),
		  expectedTail);
	const std::vector<std::string> head = {"/usr/bin/qemu-system-x86_64", "-name", "guest=file-restore:n",
					       "-machine", "microvm", "-accel", "kvm", "-cpu", "host",
					       "-m", "1024"};
	EXPECT_EQ(std::vector<std::string>(argv.begin(), argv.begin() + static_cast<long>(head.size())), head);
}

TEST(QemuCommand, NoBackingOptionForFormatsWithoutOne)
{
	QemuConfig c;
	c.qemuBinary = "/q";
	c.name = "n";
	c.formats = {ImageFormat::Vdi, ImageFormat::Vhdx, ImageFormat::Raw};
	for (const std::string &arg : buildQemuCommand(c, fds(3)).argv)
		if (arg.rfind("{\"driver\":\"v", 0) == 0 || arg.rfind("{\"driver\":\"raw", 0) == 0) {
			EXPECT_EQ(arg.find("backing"), std::string::npos) << arg;
		}
}

TEST(QemuCommand, NbdImagesAreTheSocketItselfNoFdset)
{
	QemuConfig c;
	c.qemuBinary = "/q";
	c.name = "n";
	c.formats = {ImageFormat::Raw, ImageFormat::Nbd};
	const QemuCommand cmd = buildQemuCommand(c, fds(2));
	const std::vector<std::string> tail = {
		"-add-fd", "fd=6,set=0",
		"-blockdev", "{\"driver\":\"raw\",\"node-name\":\"frdisk0\",\"read-only\":true,"
			     "\"file\":{\"driver\":\"file\",\"filename\":\"/dev/fdset/0\",\"read-only\":true}}",
		"-device", "virtio-blk-device,drive=frdisk0,serial=frdisk0,scsi=off",
		"-blockdev", "{\"driver\":\"nbd\",\"node-name\":\"frdisk1\",\"read-only\":true,"
			     "\"server\":{\"type\":\"fd\",\"str\":\"7\"}}",
		"-device", "virtio-blk-device,drive=frdisk1,serial=frdisk1,scsi=off",
	};
	const auto at = std::search(cmd.argv.begin(), cmd.argv.end(), tail.begin(), tail.end());
	EXPECT_NE(at, cmd.argv.end());
	EXPECT_EQ(cmd.fds.at(7), 201);
}

} // namespace
} // namespace fr
