// SPDX-License-Identifier: AGPL-3.0-or-later
// fr-test-probe: stands in for QEMU in the helper's setuid tests. Records on
// stdout (the helper's --log-fd) what it was given, one "key=value" per line:
//
//   argv=<arg>            one line per argument, in order (argv[0] first)
//   Uid: / Gid: / Groups: / CapInh: / CapPrm: / CapEff: / CapBnd: / CapAmb: /
//   NoNewPrivs: / Seccomp: / SigIgn: / SigBlk:   verbatim from /proc/self/status
//   sid=<n> pid=<n> pgid=<n> dumpable=<n>
//   env=<K=V>             one line per variable
//   fd=<n> mode=r|w|rw cloexec=0|1 target=<readlink>
//   content fd=<n> hex=<first 4 KiB>   for memfds (the initramfs)
//   syscall=<name> result=killed:<signal>|errno:<n>|ok|fork-failed:<errno>
//   open=<name> result=ok|errno:<n>   opens Landlock must refuse (and its own binary)
//
// then "end". Arguments and targets are printed with bytes outside 0x21-0x7e
// as \xHH so that one record stays one line. With -name guest=file-restore:hold*
// it then waits until killed (a VM that keeps running, for the VM-count tests).
#include <dirent.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

extern char **environ;

namespace {

std::string gOut;

void put(const std::string &line) { gOut += line + "\n"; }

std::string escaped(const char *s)
{
	std::string out;
	for (const char *p = s; *p != '\0'; ++p) {
		const auto c = static_cast<unsigned char>(*p);
		if (c > 0x20 && c < 0x7f && c != '\\') {
			out += static_cast<char>(c);
		} else {
			char hex[5];
			std::snprintf(hex, sizeof(hex), "\\x%02x", c);
			out += hex;
		}
	}
	return out;
}

void recordStatus()
{
	FILE *f = std::fopen("/proc/self/status", "re");
	if (f == nullptr) {
		put("status=unreadable");
		return;
	}
	static const char *const keys[] = {"Uid:",    "Gid:",    "Groups:", "CapInh:",
					   "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:",
					   "NoNewPrivs:", "Seccomp:", "SigIgn:", "SigBlk:"};
	char line[4096];
	while (std::fgets(line, sizeof(line), f) != nullptr) {
		for (const char *key : keys) {
			if (std::strncmp(line, key, std::strlen(key)) == 0) {
				std::string text = line;
				while (!text.empty() && text.back() == '\n')
					text.pop_back();
				for (char &c : text)
					if (c == '\t')
						c = ' ';
				put(text);
			}
		}
	}
	std::fclose(f);
}

void recordFds()
{
	DIR *dir = ::opendir("/proc/self/fd");
	if (dir == nullptr) {
		put("fds=unreadable");
		return;
	}
	const int own = ::dirfd(dir);
	while (dirent *entry = ::readdir(dir)) {
		if (entry->d_name[0] == '.')
			continue;
		const int fd = std::atoi(entry->d_name);
		if (fd == own)
			continue;
		const int flags = ::fcntl(fd, F_GETFL);
		const int fdFlags = ::fcntl(fd, F_GETFD);
		const int acc = flags & O_ACCMODE;
		const char *mode = acc == O_RDONLY ? "r" : acc == O_WRONLY ? "w" : "rw";
		char target[4096];
		const std::string link = std::string("/proc/self/fd/") + entry->d_name;
		const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		put("fd=" + std::to_string(fd) + " mode=" + mode +
		    " cloexec=" + ((fdFlags & FD_CLOEXEC) != 0 ? "1" : "0") + " target=" + escaped(target));
		// The initramfs memfd: its bytes (hex), so tests can find the ticket.
		if (std::strncmp(target, "/memfd:", 7) == 0) {
			unsigned char bytes[4096];
			const ssize_t got = ::pread(fd, bytes, sizeof(bytes), 0);
			std::string hex;
			for (ssize_t i = 0; i < got; ++i) {
				char two[3];
				std::snprintf(two, sizeof(two), "%02x", bytes[i]);
				hex += two;
			}
			put("content fd=" + std::to_string(fd) + " hex=" + hex);
		}
	}
	::closedir(dir);
}

// Runs `call` in a child and reports how the child ended: the filter must
// kill the process (SIGSYS), not just fail the call.
template <typename Call>
void trySyscall(const char *name, Call call)
{
	const pid_t pid = ::fork();
	if (pid < 0) {
		put(std::string("syscall=") + name + " result=fork-failed:" + std::to_string(errno));
		return;
	}
	if (pid == 0) {
		errno = 0;
		const long r = call();
		::_exit(r < 0 ? (errno & 0x7f) : 0);
	}
	int status = 0;
	::waitpid(pid, &status, 0);
	std::string result;
	if (WIFSIGNALED(status))
		result = "killed:" + std::to_string(WTERMSIG(status));
	else if (WEXITSTATUS(status) == 0)
		result = "ok";
	else
		result = "errno:" + std::to_string(WEXITSTATUS(status));
	put(std::string("syscall=") + name + " result=" + result);
}

void exerciseFilter()
{
	trySyscall("ptrace", [] { return ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr); });
	trySyscall("bpf", [] { return ::syscall(SYS_bpf, 0, nullptr, 0); });
	trySyscall("mount", [] { return static_cast<long>(::mount("none", "/", "tmpfs", 0, nullptr)); });
	trySyscall("unshare_user", [] { return static_cast<long>(::unshare(CLONE_NEWUSER)); });
	trySyscall("socket_inet", [] { return static_cast<long>(::socket(AF_INET, SOCK_STREAM, 0)); });
	trySyscall("socket_inet6", [] { return static_cast<long>(::socket(AF_INET6, SOCK_DGRAM, 0)); });
	trySyscall("socket_netlink", [] { return static_cast<long>(::socket(AF_NETLINK, SOCK_RAW, 0)); });
	trySyscall("socket_unix", [] { return static_cast<long>(::socket(AF_UNIX, SOCK_STREAM, 0)); });
	trySyscall("keyctl", [] { return ::syscall(SYS_keyctl, 0, 0, 0, 0, 0); });
	trySyscall("clone_newns", [] { return ::syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0); });
	trySyscall("ioctl_tiocsti", [] {
		char c = 'x';
		return static_cast<long>(::ioctl(0, TIOCSTI, &c));
	});
	trySyscall("ioctl_tiocsti_highbits", [] {
		char c = 'x';
		return ::syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &c);
	});
	// A foreign system-call ABI: x32 numbers on x86-64 and the i386 int 0x80
	// entry. Both must die on the filter's architecture check.
	trySyscall("x32_getpid", [] { return ::syscall(0x40000000L | SYS_getpid); });
	trySyscall("i386_getpid", [] {
		long r = 20; // __NR_getpid on i386
		asm volatile("int $0x80" : "+a"(r) : : "memory");
		return r < 0 ? (errno = static_cast<int>(-r), -1L) : 0L;
	});
	trySyscall("getpid", [] { return static_cast<long>(::getpid()); });
}

// What the filesystem lets "QEMU" do (Landlock): each open's outcome.
void tryOpen(const char *name, const std::string &path, int flags)
{
	const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0600);
	const int err = errno;
	if (fd >= 0) {
		::close(fd);
		if ((flags & O_CREAT) != 0)
			::unlink(path.c_str());
	}
	put(std::string("open=") + name + " result=" + (fd >= 0 ? "ok" : "errno:" + std::to_string(err)));
}

std::string fdPath(int fd)
{
	char target[4096];
	const ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = '\0';
	return target;
}

void exerciseFilesystem(const char *self)
{
	tryOpen("self", self, O_RDONLY);
	tryOpen("passwd", "/etc/passwd", O_RDONLY);
	tryOpen("tmp-create", "/tmp/fr-test-probe-" + std::to_string(::getpid()), O_WRONLY | O_CREAT | O_EXCL);
	// The caller's own files, by path: its console log and its image.
	tryOpen("log-by-path", fdPath(1), O_WRONLY | O_APPEND);
	tryOpen("image-by-path", fdPath(6), O_RDONLY);
}

} // namespace

int main(int argc, char **argv)
{
	bool hold = false;
	for (int i = 0; i < argc; ++i) {
		put(std::string("argv=") + escaped(argv[i]));
		if (std::strncmp(argv[i], "guest=file-restore:hold", 23) == 0)
			hold = true;
	}
	recordStatus();
	put("sid=" + std::to_string(::getsid(0)) + " pid=" + std::to_string(::getpid()) +
	    " pgid=" + std::to_string(::getpgrp()) +
	    " dumpable=" + std::to_string(::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)));
	for (char **e = environ; *e != nullptr; ++e)
		put(std::string("env=") + escaped(*e));
	recordFds();
	exerciseFilter();
	exerciseFilesystem(argv[0]);
	put("end");
	const char *p = gOut.data();
	std::size_t left = gOut.size();
	while (left > 0) {
		const ssize_t n = ::write(1, p, left);
		if (n <= 0)
			return 1;
		p += n;
		left -= static_cast<std::size_t>(n);
	}
	if (hold)
		for (;;)
			::pause();
	return 0;
}
