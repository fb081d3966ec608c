// SPDX-License-Identifier: AGPL-3.0-or-later
#include "helper/qemu_command.h"

#include "shared/guest_abi.h"

namespace fr::helper {

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
	cmdline += std::string(" ") + abi::kCmdlineTransport + "=" +
		   (transport == Transport::Vsock ? "vsock" : "serial");
	return cmdline;
}

std::vector<std::string> buildQemuArgv(const QemuConfig &c)
{
	const auto fd = [](int n) { return "/proc/self/fd/" + std::to_string(n); };
	std::vector<std::string> argv = {
		c.qemuBinary,
		"-name", std::string("guest=") + abi::kQemuNamePrefix + c.name,
		"-machine", "microvm",
		"-accel", c.kvm ? "kvm" : "tcg",
	};
	if (c.kvm)
		argv.insert(argv.end(), {"-cpu", "host"});
	argv.insert(argv.end(), {
		"-m", std::to_string(c.memoryMiB),
		"-smp", "1",
		"-nodefaults", "-no-user-config", "-nic", "none", "-display", "none",
		"-monitor", "none", "-no-reboot",
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		// The console: QEMU's stdout is the caller's --log-fd.
		"-serial", "stdio",
		// QEMU's -kernel/-initrd loaders use open(), not /dev/fdset; QEMU
		// reopens its own fds through /proc/self/fd.
		"-kernel", fd(kQemuFdKernel),
		"-initrd", fd(kQemuFdInitrd),
		"-append", c.kernelCmdline,
	});
	for (std::size_t i = 0; i < c.formats.size(); ++i) {
		const std::string n = std::to_string(i);
		const std::string serial = abi::kDiskSerialPrefix + n;
		argv.insert(argv.end(), {"-add-fd", "fd=" + std::to_string(kQemuFdFirstImage + static_cast<int>(i)) + ",set=" + n});
		// JSON because only JSON can say "backing": null. An explicit
		// driver: QEMU never probes the format.
		std::string blockdev = "{\"driver\":\"" + c.formats[i] + "\",\"node-name\":\"" + serial +
				       "\",\"read-only\":true,";
		if (c.formats[i] == "qcow2" || c.formats[i] == "vmdk")
			blockdev += "\"backing\":null,";
		blockdev += "\"file\":{\"driver\":\"file\",\"filename\":\"/dev/fdset/" + n +
			    "\",\"read-only\":true}}";
		std::string device = "virtio-blk-device,drive=";
		device += serial;
		device += ",serial=";
		device += serial;
		device += ",scsi=off";
		argv.insert(argv.end(), {"-blockdev", blockdev, "-device", device});
	}
	if (c.transport == Transport::Vsock) {
		argv.insert(argv.end(), {"-device", "vhost-vsock-device,guest-cid=" + std::to_string(c.cid) +
							    ",vhostfd=" + std::to_string(kQemuFdChannel)});
	} else {
		argv.insert(argv.end(), {
			"-chardev", "socket,id=frchannel,fd=" + std::to_string(kQemuFdChannel) + ",server=on,wait=off",
			"-device", "virtio-serial-device",
			"-device", std::string("virtserialport,chardev=frchannel,name=") + abi::kSerialPortName,
		});
	}
	return argv;
}

} // namespace fr::helper
