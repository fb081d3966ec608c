// SPDX-License-Identifier: AGPL-3.0-or-later
// file-restore-daemon: PID 1 of the restore VM.
//
// In order: mount /proc /sys /dev /run; read the kernel command line; read
// and remove the ticket; load the base and transport modules; find the
// disks; serve the guest protocol on the transport; power off when idle,
// when asked to, or on any fatal error. PID 1 never exits (the kernel would
// panic): every way out goes through powerOff().
#include <fcntl.h>
#include <linux/random.h>
#include <linux/vm_sockets.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <sodium.h>

#include <atomic>
#include <clocale>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <thread>

#include "fr_config.h"
#include "guest/activity.h"
#include "guest/channels.h"
#include "guest/disks.h"
#include "guest/modules.h"
#include "guest/server.h"
#include "guest/stream.h"
#include "guest/tools.h"
#include "guest/tree.h"
#include "shared/fd_io.h"
#include "shared/guest_abi.h"
#include "shared/log.h"
#include "shared/protocol.h"
#include "shared/validate.h"

namespace fr::guest {
namespace {

constexpr const char *kModuleDir = "/lib/modules";
constexpr std::uint32_t kDefaultIdleS = 600;
constexpr std::uint32_t kMaxIdleS = 7 * 24 * 3600;
constexpr int kMaxVsockConnections = 16;
constexpr int kPreAuthTimeoutMs = 10000;
constexpr int kPortWaitMs = 10000;

[[noreturn]] void powerOff() noexcept
{
	::sync();
	::reboot(RB_POWER_OFF);
	// Without ACPI power-off: reboot, which QEMU's -no-reboot turns into
	// an exit.
	::reboot(RB_AUTOBOOT);
	for (;;)
		::pause();
}

[[noreturn]] void fatal(const Error &error) noexcept
{
	logError(error);
	logf(LogLevel::Error, "fatal error: powering off");
	powerOff();
}

void mountOrDie(const char *source, const char *target, const char *type, unsigned long flags,
		const char *data)
{
	::mkdir(target, 0755);
	if (::mount(source, target, type, flags, data) != 0 && errno != EBUSY)
		fatal(Error(errno, "mount", target));
}

// fds 0-2 are /dev/console when the initramfs has that node; if not, open
// it now that devtmpfs is there, so the log reaches the serial console.
void ensureConsole()
{
	if (::fcntl(2, F_GETFD) >= 0)
		return;
	const int fd = ::open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; ++i)
		if (i != fd)
			::dup2(fd, i);
	if (fd > 2)
		::close(fd);
}

struct Config {
	std::uint32_t idleS = kDefaultIdleS;
	bool serial = true;
	bool replay = true;
	std::string cmdline;
};

// The value of "key=value" on the command line, or nullopt.
std::optional<std::string_view> cmdlineValue(std::string_view cmdline, std::string_view key)
{
	std::size_t i = 0;
	while (i < cmdline.size()) {
		const std::size_t end = cmdline.find_first_of(" \n", i);
		const std::string_view token = cmdline.substr(i, end == std::string_view::npos ? end : end - i);
		if (token.size() > key.size() && token.substr(0, key.size()) == key && token[key.size()] == '=')
			return token.substr(key.size() + 1);
		if (end == std::string_view::npos)
			break;
		i = end + 1;
	}
	return std::nullopt;
}

Config readConfig()
{
	Result<std::string> cmdline = readFile("/proc/cmdline", std::size_t{64} * 1024, O_NOFOLLOW);
	if (!cmdline)
		fatal(cmdline.error());
	Config config;
	config.cmdline = *cmdline;
	if (auto idle = cmdlineValue(*cmdline, abi::kCmdlineIdleTimeout)) {
		Result<std::uint64_t> value = parseDecimal(*idle, 1, kMaxIdleS, abi::kCmdlineIdleTimeout);
		if (!value)
			fatal(value.error());
		config.idleS = static_cast<std::uint32_t>(*value);
	}
	const auto transport = cmdlineValue(*cmdline, abi::kCmdlineTransport);
	if (!transport || (*transport != "vsock" && *transport != "serial"))
		fatal(Error::invalid(EINVAL, abi::kCmdlineTransport, transport ? *transport : "",
				     "must be vsock or serial"));
	config.serial = *transport == "serial";
	if (auto replay = cmdlineValue(*cmdline, abi::kCmdlineReplay)) {
		if (*replay != "yes" && *replay != "no")
			fatal(Error::invalid(EINVAL, abi::kCmdlineReplay, *replay, "must be yes or no"));
		config.replay = *replay == "yes";
	}
	return config;
}

proto::Key readTicket()
{
	Result<std::string> text = readFile(abi::kTicketPath, abi::kTicketHexLength + 1, O_NOFOLLOW);
	if (!text)
		fatal(text.error());
	Result<proto::Key> key = proto::ticketFromHex(*text, abi::kTicketPath);
	sodium_memzero(text->data(), text->size());
	if (::unlink(abi::kTicketPath) != 0)
		fatal(Error(errno, "unlink", abi::kTicketPath));
	if (!key)
		fatal(key.error());
	return *key;
}

// The VM has no entropy source the kernel trusts early (no RDRAND in TCG's
// default CPU model, no virtio-rng): the first getrandom() (libsodium's, for
// the server nonce) would block for about a second while the kernel gathers
// timing jitter. The ticket is 32 bytes from the client's CSPRNG, secret
// from everyone but the client and the helper: credited as 256 bits of
// entropy it seeds the guest's RNG at once. The nonces only have to be
// unpredictable to those who do not hold the ticket, and they are; the
// kernel keeps mixing its own jitter in.
void seedRandom(const proto::Key &key)
{
	struct {
		int entropyCount;
		int bufSize;
		std::uint8_t buf[abi::kTicketBytes];
	} seed{};
	seed.entropyCount = 8 * static_cast<int>(abi::kTicketBytes);
	seed.bufSize = static_cast<int>(abi::kTicketBytes);
	std::memcpy(seed.buf, key.data(), key.size());
	UniqueFd fd(::open("/dev/urandom", O_WRONLY | O_CLOEXEC));
	if (!fd.isValid() || ::ioctl(fd.get(), RNDADDENTROPY, &seed) != 0)
		logf(LogLevel::Warning, "RNDADDENTROPY failed (errno %d): the first handshake may wait for entropy",
		     errno);
	sodium_memzero(&seed, sizeof(seed));
}

// /dev/<vportNpM> of the virtio-serial port named abi::kSerialPortName.
// Ports appear when QEMU announces them, shortly after the driver loads.
Result<UniqueFd> openSerialPort()
{
	const std::int64_t deadline = monotonicMs() + kPortWaitMs;
	do {
		if (DIR *dir = ::opendir("/sys/class/virtio-ports")) {
			while (const dirent *d = ::readdir(dir)) {
				if (d->d_name[0] == '.')
					continue;
				const std::string base = std::string("/sys/class/virtio-ports/") + d->d_name;
				Result<std::string> name = readFile(base + "/name", 256, O_NOFOLLOW);
				if (!name || *name != std::string(abi::kSerialPortName) + "\n")
					continue;
				const std::string dev = std::string("/dev/") + d->d_name;
				::closedir(dir);
				const int fd = ::open(dev.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
				if (fd < 0)
					return Error(errno, "open", dev);
				return UniqueFd(fd);
			}
			::closedir(dir);
		}
		::usleep(5000);
	} while (monotonicMs() < deadline);
	return Error::invalid(ENODEV, "virtio-serial", abi::kSerialPortName, "port not found");
}

void serveSerial(UniqueFd port, const proto::Key &key, RequestHandler &handler)
{
	GuestStream stream(std::move(port), true);
	serveSerialPort(stream, &stream, key, handler, kPreAuthTimeoutMs);
}

Result<UniqueFd> listenVsock()
{
	UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (!fd.isValid())
		return Error(errno, "socket", "AF_VSOCK");
	sockaddr_vm addr{};
	addr.svm_family = AF_VSOCK;
	addr.svm_cid = VMADDR_CID_ANY;
	addr.svm_port = abi::kVsockPort;
	if (::bind(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0)
		return Error(errno, "bind", "vsock port");
	if (::listen(fd.get(), kMaxVsockConnections) != 0)
		return Error(errno, "listen", "vsock port");
	return fd;
}

void serveVsock(UniqueFd listener, const proto::Key &key, RequestHandler &handler)
{
	static std::atomic<int> connections{0};
	for (;;) {
		const int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				::usleep(10000);
			continue;
		}
		UniqueFd conn(fd);
		if (connections >= kMaxVsockConnections) {
			logf(LogLevel::Warning, "vsock: %d connections open, refusing another", kMaxVsockConnections);
			continue;
		}
		++connections;
		// One thread per connection: a long extract on one does not hold
		// up a status on another.
		std::thread([&key, &handler](UniqueFd c) {
			GuestStream stream(std::move(c), false);
			Connection(stream, key, handler, ConnectionOptions{kPreAuthTimeoutMs, true, &stream}).run();
			--connections;
		}, std::move(conn)).detach();
	}
}

// PID 1's own set-up: a fatal error powers off, no SIGPIPE, files private.
// libarchive converts names through the locale: with C.UTF-8 (its LC_CTYPE
// is in the initramfs) UTF-8 names go into archives as UTF-8, others as raw
// bytes; in the plain C locale every non-ASCII name would be
// "untranslatable". Returns whether C.UTF-8 is there.
bool setUpProcess()
{
	setLogIdentity("file-restore-daemon");
	std::set_terminate([] {
		logf(LogLevel::Error, "fatal: unhandled exception or abort: powering off");
		powerOff();
	});
	(void)::signal(SIGPIPE, SIG_IGN);
	::umask(077);
	return std::setlocale(LC_CTYPE, "C.UTF-8") != nullptr;
}

void mountEarly()
{
	mountOrDie("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
	mountOrDie("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
	mountOrDie("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755");
	mountOrDie("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700");
	ensureConsole();
	// Deep archive walks hold one directory fd per level.
	const rlimit files{65536, 65536};
	::setrlimit(RLIMIT_NOFILE, &files);
}

void loadModules(ModuleLoader &modules, bool serial)
{
	if (Status ok = modules.init(); !ok)
		fatal(ok.error());
	if (Status ok = modules.loadGroup("base"); !ok)
		fatal(ok.error());
	if (Status ok = modules.loadGroup(serial ? "serial" : "vsock"); !ok)
		fatal(ok.error());
}

// Serves the transport on a thread of its own.
void startServing(bool serial, const proto::Key &key, RequestHandler &handler)
{
	if (serial) {
		Result<UniqueFd> port = openSerialPort();
		if (!port)
			fatal(port.error());
		std::thread(serveSerial, std::move(*port), std::cref(key), std::ref(handler)).detach();
	} else {
		Result<UniqueFd> listener = listenVsock();
		if (!listener)
			fatal(listener.error());
		std::thread(serveVsock, std::move(*listener), std::cref(key), std::ref(handler)).detach();
	}
}

// Reaps children and powers off when asked to or idle.
[[noreturn]] void untilPowerOff(const Activity &activity, std::uint32_t idleS)
{
	for (;;) {
		reapChildren();
		if (activity.stopRequested()) {
			logf(LogLevel::Info, "stop requested: powering off");
			powerOff();
		}
		if (activity.expired()) {
			logf(LogLevel::Info, "idle for %u s: powering off", idleS);
			powerOff();
		}
		::usleep(50 * 1000);
	}
}

[[noreturn]] void run()
{
	const std::int64_t initAt = bootTimeMs(); // the kernel's share of the boot
	const bool utf8 = setUpProcess();
	mountEarly();

	const Config config = readConfig();
	const proto::Key key = readTicket();
	seedRandom(key);
	if (!proto::initCrypto())
		fatal(Error(EIO, "sodium_init", "libsodium"));

	ModuleLoader modules(kModuleDir, config.cmdline);
	loadModules(modules, config.serial);
	Tools tools(modules);
	SystemVolumes volumes(modules, tools);
	volumes.setJournalReplay(config.replay);
	if (Status ok = volumes.discover(); !ok)
		fatal(ok.error());
	Activity activity(config.idleS);
	TreeHandler handler(volumes, activity);
	startServing(config.serial, key, handler);

	if (!utf8)
		logf(LogLevel::Warning, "no C.UTF-8 locale: archive names that are not ASCII stored as raw bytes");
	logf(LogLevel::Info, "version %s ready after %llu ms, /init at %llu ms (%s transport, idle timeout %u s)",
	     FR_VERSION, static_cast<unsigned long long>(bootTimeMs()), static_cast<unsigned long long>(initAt),
	     config.serial ? "serial" : "vsock", config.idleS);
	untilPowerOff(activity, config.idleS);
}

} // namespace
} // namespace fr::guest

int main()
{
	if (::getpid() != 1) {
		static const char msg[] = "file-restore-daemon: runs only as PID 1 of the restore VM\n";
		(void)!::write(2, msg, sizeof(msg) - 1);
		return 2;
	}
	fr::guest::run();
}
