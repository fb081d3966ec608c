// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/qemu_command.h"

#include "shared/guest_abi.h"

namespace fr {

namespace {

// Places `fd` at QEMU's next fd number and returns that number.
int place(QemuCommand &cmd, int fd)
{
	cmd.fds.push_back(fd);
	return static_cast<int>(cmd.fds.size()) - 1;
}

// An image's -blockdev: JSON because only JSON can say "backing": null; an
// explicit driver, so QEMU never probes the format.
std::string blockdev(ImageFormat format, const std::string &node, int fd, const std::string &fdset)
{
	std::string json = "{\"driver\":\"";
	json += contract::formatName(format);
	json += "\",\"node-name\":\"" + node + "\",\"read-only\":true,";
	if (format == ImageFormat::Nbd)
		return json + "\"server\":{\"type\":\"fd\",\"str\":\"" + std::to_string(fd) + "\"}}";
	if (format == ImageFormat::Qcow2 || format == ImageFormat::Vmdk)
		json += "\"backing\":null,";
	return json + "\"file\":{\"driver\":\"file\",\"filename\":\"/dev/fdset/" + fdset +
	       "\",\"read-only\":true}}";
}

} // namespace

std::string buildKernelCmdline(std::uint32_t idleSeconds, Transport transport,
			       std::optional<std::uint64_t> tscKhz)
{
	// The measured boot arguments (shared/guest_abi.h says why each is
	// there; docs/benchmarks.md has the figures); panic=-1 with -no-reboot
	// ends QEMU on a guest panic instead of leaving a dead VM behind.
	std::string cmdline = abi::kKernelBootArgs;
	if (tscKhz)
		cmdline += " tsc_early_khz=" + std::to_string(*tscKhz);
	cmdline += std::string(" ") + abi::kCmdlineIdleTimeout + "=" + std::to_string(idleSeconds);
	cmdline += std::string(" ") + abi::kCmdlineTransport + "=" + contract::transportName(transport);
	return cmdline;
}

QemuCommand buildQemuCommand(const QemuConfig &c, const QemuFds &fds)
{
	QemuCommand cmd;
	place(cmd, fds.devNull);
	place(cmd, fds.log);
	place(cmd, fds.log);
	// QEMU's -kernel/-initrd loaders use open(), not /dev/fdset; QEMU
	// reopens its own fds through /proc/self/fd.
	const std::string kernel = "/proc/self/fd/" + std::to_string(place(cmd, fds.kernel));
	const std::string initrd = "/proc/self/fd/" + std::to_string(place(cmd, fds.initrd));
	const std::string channel = std::to_string(place(cmd, fds.channel));
	cmd.argv = {
		c.qemuBinary,
		"-name", contract::qemuNameArgument(c.name),
		"-machine", "microvm",
		"-accel", c.kvm ? "kvm" : "tcg",
	};
	if (c.kvm)
		cmd.argv.insert(cmd.argv.end(), {"-cpu", "host"});
	cmd.argv.insert(cmd.argv.end(), {
		"-m", std::to_string(c.memoryMiB),
		"-smp", "1",
		"-nodefaults", "-no-user-config", "-nic", "none", "-display", "none",
		"-monitor", "none", "-no-reboot",
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		// The console: QEMU's stdout is the caller's --log-fd.
		"-serial", "stdio",
		"-kernel", kernel,
		"-initrd", initrd,
		"-append", c.kernelCmdline,
	});
	for (std::size_t i = 0; i < c.formats.size() && i < fds.images.size(); ++i) {
		const std::string n = std::to_string(i);
		const std::string serial = abi::kDiskSerialPrefix + n;
		const int fd = place(cmd, fds.images[i]);
		if (c.formats[i] != ImageFormat::Nbd)
			cmd.argv.insert(cmd.argv.end(), {"-add-fd", "fd=" + std::to_string(fd) + ",set=" + n});
		std::string device = "virtio-blk-device,drive=";
		device.append(serial).append(",serial=").append(serial).append(",scsi=off");
		cmd.argv.insert(cmd.argv.end(), {"-blockdev", blockdev(c.formats[i], serial, fd, n), "-device", device});
	}
	if (c.transport == Transport::Vsock) {
		cmd.argv.insert(cmd.argv.end(), {"-device", "vhost-vsock-device,guest-cid=" + std::to_string(c.cid) +
								    ",vhostfd=" + channel});
	} else {
		cmd.argv.insert(cmd.argv.end(), {
			"-chardev", "socket,id=frchannel,fd=" + channel + ",server=on,wait=off",
			"-device", "virtio-serial-device",
			"-device", std::string("virtserialport,chardev=frchannel,name=") + abi::kSerialPortName,
		});
	}
	return cmd;
}

} // namespace fr
