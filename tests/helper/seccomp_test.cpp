// SPDX-License-Identifier: AGPL-3.0-or-later
// The seccomp profile language, the shipped QEMU profile, and the filter the
// helper embeds, exercised on this kernel in forked children.
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "seccomp-profiles/profile.h"
#include "seccomp-profiles/qemu_seccomp_bpf.h"

namespace fr::seccomp {
namespace {

std::string shippedProfile()
{
	std::ifstream in(std::string(FR_SOURCE_ROOT) + "/seccomp-profiles/qemu.policy");
	std::stringstream text;
	text << in.rdbuf();
	return text.str();
}

TEST(ProfileParser, AcceptsTheGrammar)
{
	Result<Profile> p = parseProfile("default allow -- kill-list\n"
					 "foreign-arch kill -- other ABIs\n"
					 "# comment\n\n"
					 "kill ptrace -- no tracing\n"
					 "errno ENOSYS clone3 -- flags unreadable\n"
					 "kill socket a0 != AF_UNIX -- unix only\n"
					 "kill clone a0 has CLONE_NEWUSER -- no userns\n"
					 "kill ioctl a1 & 0xffffffff == TIOCSTI -- no typing\n"
					 "kill mmap a2 >= 0x10 -- one condition\n"
					 "kill mmap a3 < 7 -- per line\n");
	ASSERT_TRUE(p) << p.error().message();
	EXPECT_TRUE(p->sawDefault);
	EXPECT_TRUE(p->killForeignArch);
	ASSERT_EQ(p->rules.size(), 7U);
	EXPECT_EQ(p->rules[0].syscall, "ptrace");
	EXPECT_EQ(p->rules[0].reason, "no tracing");
	EXPECT_FALSE(p->rules[1].kill);
	EXPECT_EQ(p->rules[1].errnum, ENOSYS);
	EXPECT_EQ(p->rules[2].conditions[0].op, Condition::Op::Ne);
	EXPECT_EQ(p->rules[2].conditions[0].value, static_cast<std::uint64_t>(AF_UNIX));
	EXPECT_EQ(p->rules[3].conditions[0].op, Condition::Op::MaskedEq);
	EXPECT_EQ(p->rules[3].conditions[0].mask, static_cast<std::uint64_t>(CLONE_NEWUSER));
	EXPECT_EQ(p->rules[4].conditions[0].mask, 0xffffffffU);
	EXPECT_EQ(p->rules[4].conditions[0].value, static_cast<std::uint64_t>(TIOCSTI));
	EXPECT_EQ(p->rules[5].conditions.size(), 1U);
	EXPECT_TRUE(compileProfile(*p));
}

TEST(ProfileParser, RefusesMistakes)
{
	const char *const bad[] = {
		"kill ptrace -- x\n",                                   // no default
		"default allow -- x\nkill ptrace\n",                    // no reason
		"default allow -- x\nkill ptrace --\n",                 // empty reason
		"default allow -- x\nkill ptrace_typo -- x\n",          // unknown syscall
		"default allow -- x\nkill socketcall -- x\n",           // not on x86-64
		"default allow -- x\nkill socket a6 == 1 -- x\n",       // no such argument
		"default allow -- x\nkill socket a0 ~= 1 -- x\n",       // unknown operator
		"default allow -- x\nkill socket a0 == AF_MARS -- x\n", // unknown constant
		"default allow -- x\nkill socket a0 == -- x\n",         // missing value
		"default allow -- x\nkill socket a0 == 1 a0 == 2 -- x\n",
		"default allow -- x\nkill socket a0 != 1 a1 >= 5 -- x\n", // one condition per rule
		"default allow -- x\nkill ioctl a1 & 0xff == 0x100 -- x\n", // never matches
		"default allow -- x\nkill ioctl a1 & 0xff 1 -- x\n",
		"default allow -- x\nerrno EWHAT ptrace -- x\n",
		"default allow -- x\nallow ptrace -- x\n",
		"default deny -- x\n",
		"default allow -- x\ndefault allow -- y\n",
		"default allow -- x\nforeign-arch allow -- y\n",
		"default allow -- x\nkill a;b -- x\n",
		"default allow -- x\nkill ptrace -- caf\xc3\xa9\n",
		"default allow -- x\nkill socket a0 == 0x10000000000000000 -- x\n",
	};
	for (const char *text : bad)
		EXPECT_FALSE(parseProfile(text)) << text;
	Result<Profile> p = parseProfile("default allow -- x\n\nkill nosuchcall -- y\n");
	ASSERT_FALSE(p);
	EXPECT_EQ(p.error().message(),
		  "seccomp profile(line 3): unknown syscall 'nosuchcall' on this architecture");
}

TEST(ShippedProfile, KillsEverythingTheIssueLists)
{
	Result<Profile> p = parseProfile(shippedProfile());
	ASSERT_TRUE(p) << p.error().message();
	EXPECT_TRUE(p->killForeignArch);
	std::set<std::string> killed, refused;
	for (const Rule &rule : p->rules) {
		EXPECT_FALSE(rule.reason.empty()) << rule.syscall;
		(rule.kill ? killed : refused).insert(rule.syscall);
	}
	for (const char *name :
	     {"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "bpf",
	      "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "ptrace",
	      "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root", "chroot",
	      "unshare", "setns", "clone", "open_by_handle_at", "personality", "iopl", "ioperm",
	      "io_uring_enter", "io_uring_register", "socket", "ioctl"})
		EXPECT_EQ(killed.count(name), 1U) << name;
	// QEMU probes io_uring at start-up: failing it (not killing) lets QEMU
	// fall back; clone3's flags cannot be inspected, glibc falls back.
	EXPECT_EQ(refused, (std::set<std::string>{"io_uring_setup", "clone3"}));
}

TEST(ShippedProfile, TheEmbeddedFilterIsTheCompiledProfile)
{
	Result<Profile> p = parseProfile(shippedProfile());
	ASSERT_TRUE(p);
	Result<Bpf> bpf = compileProfile(*p);
	ASSERT_TRUE(bpf) << bpf.error().message();
	ASSERT_EQ(bpf->bytes.size(), sizeof(helper::kQemuSeccompFilter));
	EXPECT_EQ(std::memcmp(bpf->bytes.data(), helper::kQemuSeccompFilter, bpf->bytes.size()), 0);
}

// Runs `call` in a child under the embedded filter; returns "killed:SIG",
// "errno:N" or "ok".
std::string underFilter(const std::function<long()> &call)
{
	const pid_t pid = ::fork();
	if (pid == 0) {
		sock_fprog prog{};
		prog.len = sizeof(helper::kQemuSeccompFilter) / sizeof(helper::kQemuSeccompFilter[0]);
		prog.filter = const_cast<sock_filter *>(helper::kQemuSeccompFilter);
		if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
		    ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
			::_exit(120);
		errno = 0;
		const long r = call();
		::_exit(r < 0 ? (errno & 0x7f) : 0);
	}
	int status = 0;
	::waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		return "killed:" + std::to_string(WTERMSIG(status));
	if (WEXITSTATUS(status) == 120)
		return "filter not installed";
	return WEXITSTATUS(status) == 0 ? "ok" : "errno:" + std::to_string(WEXITSTATUS(status));
}

const std::string kSigsys = "killed:" + std::to_string(SIGSYS);

TEST(EmbeddedFilter, KillsTheListedCalls)
{
	struct Case {
		const char *name;
		std::function<long()> call;
	};
	const Case cases[] = {
		{"kexec_load", [] { return ::syscall(SYS_kexec_load, 0, 0, 0, 0); }},
		{"kexec_file_load", [] { return ::syscall(SYS_kexec_file_load, -1, -1, 0, 0, 0); }},
		{"init_module", [] { return ::syscall(SYS_init_module, nullptr, 0, ""); }},
		{"finit_module", [] { return ::syscall(SYS_finit_module, -1, "", 0); }},
		{"delete_module", [] { return ::syscall(SYS_delete_module, "x", 0); }},
		{"bpf", [] { return ::syscall(SYS_bpf, 0, nullptr, 0); }},
		{"perf_event_open", [] { return ::syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0); }},
		{"userfaultfd", [] { return ::syscall(SYS_userfaultfd, 0); }},
		{"keyctl", [] { return ::syscall(SYS_keyctl, 0, 0, 0, 0, 0); }},
		{"add_key", [] { return ::syscall(SYS_add_key, "user", "x", "", 0, 0); }},
		{"request_key", [] { return ::syscall(SYS_request_key, "user", "x", "", 0); }},
		{"ptrace", [] { return ::syscall(SYS_ptrace, 0, 0, 0, 0); }},
		{"process_vm_readv", [] { return ::syscall(SYS_process_vm_readv, 1, 0, 0, 0, 0, 0); }},
		{"process_vm_writev", [] { return ::syscall(SYS_process_vm_writev, 1, 0, 0, 0, 0, 0); }},
		{"mount", [] { return static_cast<long>(::mount("none", "/", "tmpfs", 0, nullptr)); }},
		{"umount2", [] { return static_cast<long>(::umount2("/nonexistent", 0)); }},
		{"pivot_root", [] { return ::syscall(SYS_pivot_root, "/", "/"); }},
		{"chroot", [] { return static_cast<long>(::chroot("/")); }},
		{"unshare", [] { return static_cast<long>(::unshare(0)); }},
		{"setns", [] { return static_cast<long>(::setns(-1, 0)); }},
		{"clone(CLONE_NEWUSER)", [] { return ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0); }},
		{"clone(CLONE_NEWNET)", [] { return ::syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0); }},
		{"clone(CLONE_NEWPID)", [] { return ::syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0); }},
		{"open_by_handle_at", [] { return ::syscall(SYS_open_by_handle_at, -1, nullptr, 0); }},
		{"personality", [] { return ::syscall(SYS_personality, 0xffffffffUL); }},
		{"iopl", [] { return ::syscall(SYS_iopl, 3); }},
		{"ioperm", [] { return ::syscall(SYS_ioperm, 0x80, 1, 1); }},
		{"io_uring_enter", [] { return ::syscall(SYS_io_uring_enter, -1, 0, 0, 0, nullptr, 0); }},
		{"io_uring_register", [] { return ::syscall(SYS_io_uring_register, -1, 0, nullptr, 0); }},
		{"socket(AF_INET)", [] { return static_cast<long>(::socket(AF_INET, SOCK_STREAM, 0)); }},
		{"socket(AF_INET6)", [] { return static_cast<long>(::socket(AF_INET6, SOCK_STREAM, 0)); }},
		{"socket(AF_NETLINK)", [] { return static_cast<long>(::socket(AF_NETLINK, SOCK_RAW, 0)); }},
		{"socket(AF_VSOCK)", [] { return static_cast<long>(::socket(AF_VSOCK, SOCK_STREAM, 0)); }},
		{"socket(AF_UNIX | 1 << 32)", [] { return ::syscall(SYS_socket, (1UL << 32) | AF_UNIX, SOCK_STREAM, 0); }},
		{"ioctl(TIOCSTI)", [] { return ::syscall(SYS_ioctl, 0, TIOCSTI, "x"); }},
		{"ioctl(TIOCSTI | 1 << 32)", [] { return ::syscall(SYS_ioctl, 0, (1UL << 32) | TIOCSTI, "x"); }},
		{"ioctl(TIOCLINUX)", [] { return ::syscall(SYS_ioctl, 0, TIOCLINUX, "x"); }},
		{"x32 ABI getpid", [] { return ::syscall(0x40000000L | SYS_getpid); }},
	};
	for (const Case &c : cases)
		EXPECT_EQ(underFilter(c.call), kSigsys) << c.name;
}

TEST(EmbeddedFilter, ForeignI386EntryIsKilledWhereTheKernelHasOne)
{
	const auto int80 = [] {
		long r = 20; // __NR_getpid on i386
		asm volatile("int $0x80" : "+a"(r) : : "memory");
		return r < 0 ? (errno = static_cast<int>(-r), -1L) : 0L;
	};
	// Without the filter: does this kernel run i386 syscalls at all?
	const pid_t pid = ::fork();
	if (pid == 0)
		::_exit(int80() < 0 ? 1 : 0);
	int status = 0;
	::waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		GTEST_SKIP() << "this kernel has no i386 entry (int 0x80 raises signal " << WTERMSIG(status) << ")";
	EXPECT_EQ(underFilter(int80), kSigsys);
}

TEST(EmbeddedFilter, LeavesWhatQemuNeeds)
{
	EXPECT_EQ(underFilter([] { return static_cast<long>(::getpid()); }), "ok");
	EXPECT_EQ(underFilter([] { return static_cast<long>(::socket(AF_UNIX, SOCK_STREAM, 0)); }), "ok");
	EXPECT_EQ(underFilter([] {
		int fds[2];
		return static_cast<long>(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
	}), "ok");
	EXPECT_EQ(underFilter([] { return static_cast<long>(::ioctl(0, FIONREAD, nullptr)) < 0 ? 0L : 0L; }), "ok");
	// Threads and plain fork: clone without namespace flags.
	EXPECT_EQ(underFilter([] {
		const pid_t child = ::fork();
		if (child == 0)
			::_exit(0);
		int st = 0;
		return static_cast<long>(::waitpid(child, &st, 0) == child && WIFEXITED(st) ? 0 : -1);
	}), "ok");
	EXPECT_EQ(underFilter([] { return ::syscall(SYS_clone3, nullptr, 0); }),
		  "errno:" + std::to_string(ENOSYS));
	EXPECT_EQ(underFilter([] { return ::syscall(SYS_io_uring_setup, 1, nullptr); }),
		  "errno:" + std::to_string(ENOSYS));
}

} // namespace
} // namespace fr::seccomp
