// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Helpers for the tests that boot the real VM image under QEMU (suite 'vm'):
// running tools without a shell, building disk images without mounting
// anything, starting QEMU with the argv shape the helper uses, and talking
// to the daemon over the serial transport's unix socket.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "shared/guest_session.h"
#include "shared/protocol.h"
#include "shared/unique_fd.h"

namespace fr::test {

// A fresh directory under $TMPDIR (or /var/tmp), removed with its contents.
class TempDir {
public:
	TempDir();
	~TempDir();
	const std::string &path() const { return path_; }
	std::string operator/(const std::string &name) const { return path_ + "/" + name; }

private:
	std::string path_;
};

// Runs argv[0] (looked up in PATH) with stdout/stderr to `log` (appended)
// or inherited. Returns the exit status (-1 when killed by a signal).
// stdin comes from `input` (a file) or /dev/null.
int run(const std::vector<std::string> &argv, const std::string &log = {}, const std::string &input = {});
// Like run(), failing the current test on a non-zero exit.
bool runOk(const std::vector<std::string> &argv, const std::string &log = {}, const std::string &input = {});
// Whether a program is found in PATH (or is an existing absolute path).
bool haveProgram(const std::string &name);

std::string readFile(const std::string &path);
void writeFile(const std::string &path, const std::string &data, unsigned mode = 0644);

// SHA-256 of bytes / of a file, hex.
std::string sha256Hex(const std::string &bytes);
std::string sha256File(const std::string &path);

// Deterministic pseudo-random bytes (xorshift), for big test files.
void writePatternFile(const std::string &path, std::uint64_t size, std::uint64_t seed);
std::string patternSha256(std::uint64_t size, std::uint64_t seed);

// The initramfs the helper would build: the base image, zero padding to 4
// bytes, an uncompressed newc cpio holding /ticket (docs/protocol.md).
void writeTicketInitramfs(const std::string &base, const std::string &ticketHex,
			  const std::string &out);

// The host's TSC frequency in kHz for tsc_early_khz= (from /proc/cpuinfo);
// 0 when unknown.
unsigned long hostTscKhz();

struct VmDisk {
	std::string path;
	std::string format = "raw"; // raw or qcow2
};

struct VmOptions {
	std::string kernel;
	std::string initramfs; // with the ticket appended
	std::vector<VmDisk> disks;
	unsigned memoryMiB = 256;
	unsigned idleS = 600;
	std::string socketPath; // serial transport
	std::string consoleLog;
	bool vsock = false;          // vsock transport instead of serial
	bool vsockDevice = false;    // add a vhost-vsock-device (needs /dev/vhost-vsock)
	unsigned cid = 0;
	std::string kernelArgs; // appended to the kernel command line
};

// The QEMU argv the helper builds (DESIGN.md; helper engineer's branch),
// minus the fd passing: microvm, no defaults, TCG, read-only virtio-blk
// disks with serials frdisk<N>, the serial transport on a unix socket.
std::vector<std::string> qemuArgv(const VmOptions &options);

class Vm {
public:
	explicit Vm(VmOptions options);
	~Vm(); // kills QEMU if still running
	bool start();
	// Connects to the serial socket (retrying while QEMU sets up) and opens
	// an authenticated session.
	Result<GuestSession> connect(const proto::Key &ticket, int timeoutMs = 60000);
	UniqueFd connectRaw(int timeoutMs = 20000);
	// vsock transport: connects to the VM's CID, port abi::kVsockPort.
	Result<GuestSession> connectVsock(const proto::Key &ticket, int timeoutMs = 60000);
	// Waits for QEMU to exit; true if it did within timeoutMs.
	bool waitExit(int timeoutMs, int *status = nullptr);
	bool running();
	pid_t pid() const { return pid_; }
	std::string console() const;
	const VmOptions &options() const { return options_; }

private:
	VmOptions options_;
	pid_t pid_ = -1;
	bool exited_ = false;
};

// The image to boot: FR_TEST_VMLINUZ / FR_TEST_INITRAMFS from the test's
// environment (set by meson). Empty when unset or missing.
std::string testKernel();
std::string testInitramfs();
std::string qemuBinary();

} // namespace fr::test
