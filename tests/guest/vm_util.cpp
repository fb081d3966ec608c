// SPDX-License-Identifier: AGPL-3.0-or-later
#include "vm_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <gtest/gtest.h>

#include "fr_config.h"
#include "shared/initramfs.h"
#include "shared/guest_abi.h"

namespace fr::test {

namespace {

std::uint64_t nowMs()
{
	timespec ts{};
	::clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
}

std::string envOr(const char *name, const std::string &fallback)
{
	const char *value = std::getenv(name);
	return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

class Xorshift {
public:
	explicit Xorshift(std::uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ULL + 1) {}
	std::uint64_t next()
	{
		s_ ^= s_ << 13;
		s_ ^= s_ >> 7;
		s_ ^= s_ << 17;
		return s_;
	}

private:
	std::uint64_t s_;
};

void fillPattern(Xorshift &rng, std::vector<char> &buf, std::size_t n)
{
	for (std::size_t i = 0; i < n; i += 8) {
		const std::uint64_t v = rng.next();
		std::memcpy(buf.data() + i, &v, n - i < 8 ? n - i : 8);
	}
}

} // namespace

TempDir::TempDir()
{
	std::string tmpl = envOr("TMPDIR", "/var/tmp") + "/fr-vm-test.XXXXXX";
	if (::mkdtemp(tmpl.data()) == nullptr)
		std::abort();
	path_ = tmpl;
}

TempDir::~TempDir()
{
	if (std::getenv("FR_TEST_KEEP") == nullptr) {
		std::error_code ec;
		std::filesystem::remove_all(path_, ec);
	}
}

int run(const std::vector<std::string> &argv, const std::string &log, const std::string &input)
{
	const pid_t pid = ::fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (!log.empty()) {
			const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
			if (fd >= 0) {
				::dup2(fd, 1);
				::dup2(fd, 2);
			}
		}
		const int in = ::open(input.empty() ? "/dev/null" : input.c_str(), O_RDONLY);
		if (in >= 0)
			::dup2(in, 0);
		std::vector<char *> args;
		for (const std::string &a : argv)
			args.push_back(const_cast<char *>(a.c_str()));
		args.push_back(nullptr);
		::execvp(args[0], args.data());
		::_exit(127);
	}
	int status = 0;
	while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool runOk(const std::vector<std::string> &argv, const std::string &log, const std::string &input)
{
	const int rc = run(argv, log, input);
	std::string joined;
	for (const std::string &a : argv)
		joined += a + " ";
	EXPECT_EQ(rc, 0) << joined << (log.empty() ? "" : "\n" + readFile(log));
	return rc == 0;
}

bool haveProgram(const std::string &name)
{
	if (name.find('/') != std::string::npos)
		return ::access(name.c_str(), X_OK) == 0;
	std::stringstream path(envOr("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"));
	std::string dir;
	while (std::getline(path, dir, ':'))
		if (::access((dir + "/" + name).c_str(), X_OK) == 0)
			return true;
	return false;
}

std::string readFile(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void writeFile(const std::string &path, const std::string &data, unsigned mode)
{
	const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
	ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
	::fchmod(fd, mode);
	::close(fd);
}

std::string sha256Hex(const std::string &bytes)
{
	unsigned char digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(digest, reinterpret_cast<const unsigned char *>(bytes.data()), bytes.size());
	char hex[2 * sizeof(digest) + 1];
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	return hex;
}

std::string sha256File(const std::string &path)
{
	crypto_hash_sha256_state state;
	crypto_hash_sha256_init(&state);
	const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return "unreadable";
	std::vector<unsigned char> buf(1 << 20);
	for (;;) {
		const ssize_t n = ::read(fd, buf.data(), buf.size());
		if (n <= 0)
			break;
		crypto_hash_sha256_update(&state, buf.data(), static_cast<std::size_t>(n));
	}
	::close(fd);
	unsigned char digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&state, digest);
	char hex[2 * sizeof(digest) + 1];
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	return hex;
}

void writePatternFile(const std::string &path, std::uint64_t size, std::uint64_t seed)
{
	const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ASSERT_GE(fd, 0);
	Xorshift rng(seed);
	std::vector<char> buf(1 << 20);
	for (std::uint64_t left = size; left > 0;) {
		const std::size_t n = left < buf.size() ? static_cast<std::size_t>(left) : buf.size();
		fillPattern(rng, buf, n);
		ASSERT_EQ(::write(fd, buf.data(), n), static_cast<ssize_t>(n));
		left -= n;
	}
	::close(fd);
}

std::string patternSha256(std::uint64_t size, std::uint64_t seed)
{
	crypto_hash_sha256_state state;
	crypto_hash_sha256_init(&state);
	Xorshift rng(seed);
	std::vector<char> buf(1 << 20);
	for (std::uint64_t left = size; left > 0;) {
		const std::size_t n = left < buf.size() ? static_cast<std::size_t>(left) : buf.size();
		fillPattern(rng, buf, n);
		crypto_hash_sha256_update(&state, reinterpret_cast<unsigned char *>(buf.data()), n);
		left -= n;
	}
	unsigned char digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&state, digest);
	char hex[2 * sizeof(digest) + 1];
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	return hex;
}

void writeTicketInitramfs(const std::string &base, const std::string &ticketHex, const std::string &out)
{
	std::string image = readFile(base);
	ASSERT_FALSE(image.empty()) << base;
	// What the helper appends (shared/initramfs.h), in a file.
	image += ticketArchive(ticketHex, image.size());
	writeFile(out, image, 0600);
}

unsigned long hostTscKhz()
{
	std::ifstream in("/proc/cpuinfo");
	std::string line;
	while (std::getline(in, line)) {
		if (line.rfind("cpu MHz", 0) != 0)
			continue;
		const std::size_t colon = line.find(':');
		if (colon == std::string::npos)
			return 0;
		return static_cast<unsigned long>(std::strtod(line.c_str() + colon + 1, nullptr) * 1000.0);
	}
	return 0;
}

std::vector<std::string> qemuArgv(const VmOptions &o)
{
	// FR_KERNEL_BASE_ARGS replaces abi::kKernelBootArgs, to compare
	// command lines in bench/ (never set in tests).
	const char *base = std::getenv("FR_KERNEL_BASE_ARGS");
	std::string cmdline = std::string(base != nullptr && *base != '\0' ? base : abi::kKernelBootArgs) + " " +
			      abi::kCmdlineIdleTimeout + "=" + std::to_string(o.idleS) + " " +
			      abi::kCmdlineTransport + "=" + (o.vsock ? "vsock" : "serial");
	if (const unsigned long khz = hostTscKhz(); khz > 0)
		cmdline += " tsc_early_khz=" + std::to_string(khz);
	if (!o.kernelArgs.empty())
		cmdline += " " + o.kernelArgs;
	// For comparing kernel arguments in bench/ (never set in tests).
	if (const char *extra = std::getenv("FR_KERNEL_EXTRA_ARGS"); extra != nullptr && *extra != '\0')
		cmdline += std::string(" ") + extra;
	// FR_QEMU_ACCEL replaces "tcg" (e.g. "tcg,tb-size=64"), to compare
	// accelerator settings in bench/ (never set in tests).
	const char *accel = std::getenv("FR_QEMU_ACCEL");
	std::vector<std::string> argv = {
		qemuBinary(), "-machine", "microvm", "-nodefaults", "-no-user-config", "-nic", "none",
		"-display", "none", "-monitor", "none", "-no-reboot",
		"-accel", accel != nullptr && *accel != '\0' ? accel : "tcg",
		"-m", std::to_string(o.memoryMiB), "-kernel", o.kernel, "-initrd", o.initramfs,
		"-append", cmdline, "-serial", "stdio",
	};
	for (std::size_t i = 0; i < o.disks.size(); ++i) {
		const std::string n = std::to_string(i);
		argv.insert(argv.end(), {"-blockdev", "driver=file,node-name=file" + n + ",filename=" + o.disks[i].path + ",read-only=on",
					 "-blockdev", "driver=" + o.disks[i].format + ",node-name=disk" + n + ",file=file" + n + ",read-only=on",
					 "-device", "virtio-blk-device,drive=disk" + n + ",serial=" + abi::kDiskSerialPrefix + n});
	}
	if (o.vsock) {
		if (o.vsockDevice)
			argv.insert(argv.end(), {"-device", "vhost-vsock-device,guest-cid=" + std::to_string(o.cid)});
		return argv;
	}
	argv.insert(argv.end(), {"-chardev", "socket,id=frserial,path=" + o.socketPath + ",server=on,wait=off",
				 "-device", "virtio-serial-device",
				 "-device", std::string("virtserialport,chardev=frserial,name=") + abi::kSerialPortName});
	return argv;
}

Vm::Vm(VmOptions options) : options_(std::move(options)) {}

Vm::~Vm()
{
	if (pid_ > 0 && !exited_) {
		::kill(pid_, SIGKILL);
		int status;
		::waitpid(pid_, &status, 0);
	}
}

bool Vm::start()
{
	const std::vector<std::string> argv = qemuArgv(options_);
	pid_ = ::fork();
	if (pid_ < 0)
		return false;
	if (pid_ == 0) {
		const int fd = ::open(options_.consoleLog.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			::dup2(fd, 1);
			::dup2(fd, 2);
		}
		const int devnull = ::open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			::dup2(devnull, 0);
		std::vector<char *> args;
		for (const std::string &a : argv)
			args.push_back(const_cast<char *>(a.c_str()));
		args.push_back(nullptr);
		::execv(args[0], args.data());
		::_exit(127);
	}
	return true;
}

UniqueFd Vm::connectRaw(int timeoutMs)
{
	const std::uint64_t deadline = nowMs() + static_cast<std::uint64_t>(timeoutMs);
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	std::strncpy(addr.sun_path, options_.socketPath.c_str(), sizeof(addr.sun_path) - 1);
	do {
		UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
		if (::connect(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0)
			return fd;
		::usleep(20000);
	} while (nowMs() < deadline && running());
	return UniqueFd();
}

Result<GuestSession> Vm::connectVsock(const proto::Key &ticket, int timeoutMs)
{
	const std::uint64_t deadline = nowMs() + static_cast<std::uint64_t>(timeoutMs);
	sockaddr_vm addr{};
	addr.svm_family = AF_VSOCK;
	addr.svm_cid = options_.cid;
	addr.svm_port = abi::kVsockPort;
	do {
		UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
		if (fd.isValid() && ::connect(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0)
			return GuestSession::open(std::move(fd), ticket, timeoutMs);
		::usleep(50000);
	} while (nowMs() < deadline && running());
	return Error(ECONNREFUSED, "connect", "vsock");
}

Result<GuestSession> Vm::connect(const proto::Key &ticket, int timeoutMs)
{
	UniqueFd fd = connectRaw(timeoutMs);
	if (!fd.isValid())
		return Error(ECONNREFUSED, "connect", options_.socketPath);
	return GuestSession::open(std::move(fd), ticket, timeoutMs);
}

bool Vm::running()
{
	if (pid_ <= 0 || exited_)
		return false;
	int status;
	const pid_t r = ::waitpid(pid_, &status, WNOHANG);
	if (r == pid_)
		exited_ = true;
	return !exited_;
}

bool Vm::waitExit(int timeoutMs, int *status)
{
	const std::uint64_t deadline = nowMs() + static_cast<std::uint64_t>(timeoutMs);
	while (!exited_) {
		int st = 0;
		const pid_t r = ::waitpid(pid_, &st, WNOHANG);
		if (r == pid_) {
			exited_ = true;
			if (status != nullptr)
				*status = st;
			break;
		}
		if (nowMs() >= deadline)
			return false;
		::usleep(20000);
	}
	return true;
}

std::string Vm::console() const
{
	return readFile(options_.consoleLog);
}

std::string testKernel()
{
	const std::string path = envOr("FR_TEST_VMLINUZ", "");
	return ::access(path.c_str(), R_OK) == 0 ? path : std::string();
}

std::string testInitramfs()
{
	const std::string path = envOr("FR_TEST_INITRAMFS", "");
	return ::access(path.c_str(), R_OK) == 0 ? path : std::string();
}

std::string qemuBinary()
{
	return FR_QEMU_BINARY;
}

} // namespace fr::test
