// SPDX-License-Identifier: AGPL-3.0-or-later
#include "seccomp-profiles/profile.h"

#include <linux/sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>

#include "shared/unique_fd.h"
#include "shared/validate.h"

namespace fr::seccomp {

namespace {

struct Named {
	const char *name;
	std::uint64_t value;
};

// The names a profile may use. Values come from the system headers.
constexpr Named kConstants[] = {
	{"AF_UNIX", AF_UNIX},
	{"AF_INET", AF_INET},
	{"AF_INET6", AF_INET6},
	{"AF_NETLINK", AF_NETLINK},
	{"AF_PACKET", AF_PACKET},
	{"AF_VSOCK", AF_VSOCK},
	{"CLONE_NEWNS", CLONE_NEWNS},
	{"CLONE_NEWCGROUP", CLONE_NEWCGROUP},
	{"CLONE_NEWUTS", CLONE_NEWUTS},
	{"CLONE_NEWIPC", CLONE_NEWIPC},
	{"CLONE_NEWUSER", CLONE_NEWUSER},
	{"CLONE_NEWPID", CLONE_NEWPID},
	{"CLONE_NEWNET", CLONE_NEWNET},
	{"CLONE_NEWTIME", CLONE_NEWTIME},
	{"TIOCSTI", TIOCSTI},
	{"TIOCLINUX", TIOCLINUX},
};

constexpr Named kErrnos[] = {
	{"ENOSYS", ENOSYS},
	{"EPERM", EPERM},
	{"EACCES", EACCES},
	{"EINVAL", EINVAL},
};

constexpr std::size_t kMaxText = 256 * 1024;
constexpr std::size_t kMaxLine = 1024;
constexpr std::size_t kMaxRules = 1024;
// libseccomp 2.5.4 never finishes merging some sets of rules that test
// several arguments of one syscall, e.g. {a0 != 1, a1 >= 5}, {a0 != 1,
// a1 >= 6}, {a0 != 1, a2 >= 5} (found by fuzz_seccomp_profile). A kill-list
// needs one condition per rule; several lines still OR conditions together.
constexpr std::size_t kMaxConditions = 1;
constexpr std::size_t kMaxRulesPerSyscall = 8;

Error lineError(std::size_t line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
Error lineError(std::size_t line, const char *fmt, ...)
{
	char where[32];
	std::snprintf(where, sizeof(where), "line %zu", line);
	char detail[Error::kDetailMax + 1];
	va_list args;
	va_start(args, fmt);
	std::vsnprintf(detail, sizeof(detail), fmt, args);
	va_end(args);
	return Error::invalid(EINVAL, "seccomp profile", where, "%s", detail);
}

#define TOKEN(sv) static_cast<int>((sv).size()), (sv).data()

std::vector<std::string_view> split(std::string_view text)
{
	std::vector<std::string_view> tokens;
	std::size_t i = 0;
	while (i < text.size()) {
		if (text[i] == ' ' || text[i] == '\t') {
			++i;
			continue;
		}
		std::size_t end = i;
		while (end < text.size() && text[end] != ' ' && text[end] != '\t')
			++end;
		tokens.push_back(text.substr(i, end - i));
		i = end;
	}
	return tokens;
}

bool lookup(const Named *table, std::size_t count, std::string_view name, std::uint64_t &out)
{
	for (std::size_t i = 0; i < count; ++i) {
		if (name == table[i].name) {
			out = table[i].value;
			return true;
		}
	}
	return false;
}

bool parseValue(std::string_view text, std::uint64_t &out)
{
	if (lookup(kConstants, std::size(kConstants), text, out))
		return true;
	if (text.size() > 2 && text[0] == '0' && text[1] == 'x') {
		const std::string_view digits = text.substr(2);
		if (digits.size() > 16 || !CharSet(false, "0123456789abcdefABCDEF").containsAll(digits))
			return false;
		out = 0;
		for (char c : digits) {
			const unsigned d = c <= '9' ? static_cast<unsigned>(c - '0')
					   : static_cast<unsigned>((c | 0x20) - 'a' + 10);
			out = (out << 4) | d;
		}
		return true;
	}
	Result<std::uint64_t> n = parseDecimal(text, 0, UINT64_MAX, "value");
	if (!n)
		return false;
	out = *n;
	return true;
}

// Parses the conditions in tokens[from, to).
Result<std::vector<Condition>> parseConditions(const std::vector<std::string_view> &tokens,
					       std::size_t from, std::size_t to, std::size_t line)
{
	std::vector<Condition> conditions;
	std::size_t i = from;
	while (i < to) {
		Condition c;
		const std::string_view arg = tokens[i];
		if (arg.size() != 2 || arg[0] != 'a' || arg[1] < '0' || arg[1] > '5')
			return lineError(line, "expected an argument a0..a5, not '%.*s'", TOKEN(arg));
		c.arg = static_cast<unsigned>(arg[1] - '0');
		if (i + 2 >= to)
			return lineError(line, "incomplete condition on %.*s", TOKEN(arg));
		std::string_view op = tokens[i + 1];
		std::size_t valueAt = i + 2;
		if (op == "&") {
			if (i + 4 >= to || tokens[i + 3] != "==")
				return lineError(line, "expected 'a%u & MASK == VALUE'", c.arg);
			if (!parseValue(tokens[i + 2], c.mask))
				return lineError(line, "unknown value '%.*s'", TOKEN(tokens[i + 2]));
			c.op = Condition::Op::MaskedEq;
			valueAt = i + 4;
		} else if (op == "==") {
			c.op = Condition::Op::Eq;
		} else if (op == "!=") {
			c.op = Condition::Op::Ne;
		} else if (op == "<") {
			c.op = Condition::Op::Lt;
		} else if (op == "<=") {
			c.op = Condition::Op::Le;
		} else if (op == ">") {
			c.op = Condition::Op::Gt;
		} else if (op == ">=") {
			c.op = Condition::Op::Ge;
		} else if (op == "has") {
			c.op = Condition::Op::MaskedEq;
		} else {
			return lineError(line, "unknown operator '%.*s'", TOKEN(op));
		}
		if (!parseValue(tokens[valueAt], c.value))
			return lineError(line, "unknown value '%.*s'", TOKEN(tokens[valueAt]));
		if (op == "has")
			c.mask = c.value;
		if (c.op == Condition::Op::MaskedEq && (c.value & ~c.mask) != 0)
			return lineError(line, "value has bits outside the mask (never matches)");
		for (const Condition &earlier : conditions)
			if (earlier.arg == c.arg)
				return lineError(line, "two conditions on a%u (libseccomp allows one)", c.arg);
		conditions.push_back(c);
		if (conditions.size() > kMaxConditions)
			return lineError(line, "more than one condition (write one rule per condition)");
		i = valueAt + 1;
	}
	return conditions;
}

} // namespace

Result<Profile> parseProfile(std::string_view text)
{
	Profile profile;
	if (text.size() > kMaxText)
		return Error::invalid(EFBIG, "seccomp profile", "", "larger than %zu bytes", kMaxText);
	std::size_t line = 0;
	while (!text.empty()) {
		++line;
		const std::size_t newline = text.find('\n');
		std::string_view raw = text.substr(0, newline);
		text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
		if (raw.size() > kMaxLine)
			return lineError(line, "longer than %zu bytes", kMaxLine);
		for (char c : raw)
			if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || static_cast<unsigned char>(c) >= 0x7f)
				return lineError(line, "contains a byte that is not printable ASCII");
		const std::size_t hash = raw.find('#');
		if (hash != std::string_view::npos)
			raw = raw.substr(0, hash);
		std::vector<std::string_view> tokens = split(raw);
		if (tokens.empty())
			continue;
		// Everything after "--" is the reason, which every line must give.
		std::size_t dashes = tokens.size();
		for (std::size_t i = 0; i < tokens.size(); ++i)
			if (tokens[i] == "--") {
				dashes = i;
				break;
			}
		if (dashes + 1 >= tokens.size())
			return lineError(line, "missing '-- reason'");
		std::string reason;
		for (std::size_t i = dashes + 1; i < tokens.size(); ++i) {
			if (!reason.empty())
				reason += ' ';
			reason += tokens[i];
		}
		const std::string_view keyword = tokens[0];
		if (keyword == "default") {
			if (profile.sawDefault || dashes != 2 || tokens[1] != "allow")
				return lineError(line, "expected one 'default allow -- reason'");
			profile.sawDefault = true;
			continue;
		}
		if (keyword == "foreign-arch") {
			if (profile.killForeignArch || dashes != 2 || tokens[1] != "kill")
				return lineError(line, "expected one 'foreign-arch kill -- reason'");
			profile.killForeignArch = true;
			continue;
		}
		Rule rule;
		rule.line = line;
		rule.reason = reason;
		std::size_t at = 1;
		if (keyword == "kill") {
			rule.kill = true;
		} else if (keyword == "errno") {
			std::uint64_t errnum = 0;
			if (dashes < 3 || !lookup(kErrnos, std::size(kErrnos), tokens[1], errnum))
				return lineError(line, "expected 'errno ENOSYS|EPERM|EACCES|EINVAL <syscall> ...'");
			rule.kill = false;
			rule.errnum = static_cast<int>(errnum);
			at = 2;
		} else {
			return lineError(line, "unknown keyword '%.*s'", TOKEN(keyword));
		}
		if (at >= dashes)
			return lineError(line, "missing syscall name");
		rule.syscall = std::string(tokens[at]);
		if (!CharSet(true, "_").containsAll(rule.syscall) || rule.syscall.size() > 64)
			return lineError(line, "'%.*s' is not a syscall name", TOKEN(tokens[at]));
		rule.number = seccomp_syscall_resolve_name(rule.syscall.c_str());
		if (rule.number == __NR_SCMP_ERROR || rule.number < 0)
			return lineError(line, "unknown syscall '%s' on this architecture", rule.syscall.c_str());
		Result<std::vector<Condition>> conditions = parseConditions(tokens, at + 1, dashes, line);
		if (!conditions)
			return conditions.error();
		rule.conditions = *conditions;
		if (profile.rules.size() == kMaxRules)
			return lineError(line, "too many rules");
		std::size_t same = 0;
		for (const Rule &earlier : profile.rules)
			same += earlier.number == rule.number ? 1 : 0;
		if (same == kMaxRulesPerSyscall)
			return lineError(line, "more than %zu rules for %s", kMaxRulesPerSyscall,
					 rule.syscall.c_str());
		profile.rules.push_back(rule);
	}
	if (!profile.sawDefault)
		return Error::invalid(EINVAL, "seccomp profile", "", "no 'default allow' line");
	return profile;
}

namespace {

struct CtxDeleter {
	void operator()(void *ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

scmp_compare toScmp(Condition::Op op)
{
	switch (op) {
	case Condition::Op::Eq:
		return SCMP_CMP_EQ;
	case Condition::Op::Ne:
		return SCMP_CMP_NE;
	case Condition::Op::Lt:
		return SCMP_CMP_LT;
	case Condition::Op::Le:
		return SCMP_CMP_LE;
	case Condition::Op::Gt:
		return SCMP_CMP_GT;
	case Condition::Op::Ge:
		return SCMP_CMP_GE;
	case Condition::Op::MaskedEq:
		return SCMP_CMP_MASKED_EQ;
	}
	return SCMP_CMP_EQ;
}

} // namespace

Result<Bpf> compileProfile(const Profile &profile)
{
	Ctx ctx(seccomp_init(SCMP_ACT_ALLOW));
	if (!ctx)
		return Error(ENOMEM, "seccomp_init");
	if (profile.killForeignArch) {
		const int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
		if (rc != 0)
			return Error(-rc, "seccomp_attr_set", "SCMP_FLTATR_ACT_BADARCH");
	}
	for (const Rule &rule : profile.rules) {
		scmp_arg_cmp cmps[kMaxConditions];
		unsigned count = 0;
		for (const Condition &c : rule.conditions) {
			cmps[count].arg = c.arg;
			cmps[count].op = toScmp(c.op);
			cmps[count].datum_a = c.op == Condition::Op::MaskedEq ? c.mask : c.value;
			cmps[count].datum_b = c.op == Condition::Op::MaskedEq ? c.value : 0;
			++count;
		}
		const std::uint32_t action =
			rule.kill ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_ERRNO(static_cast<std::uint16_t>(rule.errnum));
		const int rc = seccomp_rule_add_exact_array(ctx.get(), action, rule.number, count, cmps);
		if (rc != 0) {
			char where[96];
			std::snprintf(where, sizeof(where), "line %zu: %s", rule.line, rule.syscall.c_str());
			return Error(-rc, "seccomp_rule_add", where);
		}
	}
	UniqueFd out(::memfd_create("seccomp-bpf", MFD_CLOEXEC));
	if (!out.isValid())
		return Error(errno, "memfd_create", "seccomp-bpf");
	const int rc = seccomp_export_bpf(ctx.get(), out.get());
	if (rc != 0)
		return Error(-rc, "seccomp_export_bpf");
	Bpf bpf;
	std::uint8_t buf[4096];
	off_t offset = 0;
	for (;;) {
		const ssize_t n = ::pread(out.get(), buf, sizeof(buf), offset);
		if (n < 0)
			return Error(errno, "pread", "seccomp-bpf");
		if (n == 0)
			break;
		bpf.bytes.insert(bpf.bytes.end(), buf, buf + n);
		offset += n;
	}
	if (bpf.bytes.empty() || bpf.bytes.size() % 8 != 0)
		return Error::invalid(EINVAL, "seccomp_export_bpf", "", "unexpected BPF size %zu",
				      bpf.bytes.size());
	return bpf;
}

} // namespace fr::seccomp
