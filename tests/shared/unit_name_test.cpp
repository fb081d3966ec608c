// SPDX-License-Identifier: AGPL-3.0-or-later
// Unit-name escaping, checked against the real systemd-escape on hundreds of
// generated strings (non-UTF-8 bytes, leading dots, slashes, dashes,
// backslashes, the empty string, very long strings).
#include "shared/unit_name.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

extern char **environ;

namespace fr {
namespace {

struct Captured {
	int status;
	std::string out;
};

// Runs argv (no shell) and returns its exit status and stdout.
Captured capture(const std::vector<std::string> &args)
{
	int fds[2];
	EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
	std::vector<char *> argv;
	for (const std::string &a : args)
		argv.push_back(const_cast<char *>(a.c_str()));
	argv.push_back(nullptr);
	pid_t pid;
	const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
	posix_spawn_file_actions_destroy(&actions);
	::close(fds[1]);
	Captured result{-1, {}};
	if (rc != 0) {
		::close(fds[0]);
		return result;
	}
	char buf[65536];
	ssize_t n;
	while ((n = ::read(fds[0], buf, sizeof(buf))) > 0)
		result.out.append(buf, static_cast<std::size_t>(n));
	::close(fds[0]);
	::waitpid(pid, &result.status, 0);
	return result;
}

bool haveSystemdEscape()
{
	return ::access("/usr/bin/systemd-escape", X_OK) == 0 || ::access("/bin/systemd-escape", X_OK) == 0;
}

// Strings that stress every rule: bytes are drawn from a pool weighted
// towards the characters the escaper treats specially.
std::vector<std::string> generatedStrings(std::size_t count)
{
	std::mt19937 rng(20261126);
	const std::string special = "/-\\.:_ ,=x0123456789abcdefABCDEFzZ";
	std::vector<std::string> out = {
		"", ".", "..", "/", "-", "\\", ".hidden", "..x", "/.dot", "a.", "a-b", "a--b", "//",
		"qemu_/srv/backup/vm/100/2026-11-25T10:00:00Z", "\\x2d", "\xff", "\xc3\xa9t\xc3\xa9",
		"\xed\xa0\x80", "tab\there", "new\nline", std::string(4000, '-'), std::string(10000, 'a'),
		std::string(3000, '\xfe') + "/" + std::string(3000, '.'),
	};
	std::uniform_int_distribution<int> kind(0, 2);
	std::uniform_int_distribution<std::size_t> len(0, 40);
	std::uniform_int_distribution<int> byte(1, 255); // NUL cannot be an argv byte
	std::uniform_int_distribution<std::size_t> pick(0, special.size() - 1);
	while (out.size() < count) {
		std::string s;
		const std::size_t n = out.size() % 50 == 0 ? len(rng) * 50 : len(rng);
		for (std::size_t i = 0; i < n; ++i)
			s += kind(rng) == 0 ? static_cast<char>(byte(rng)) : special[pick(rng)];
		out.push_back(s);
	}
	return out;
}

TEST(UnitName, KnownValues)
{
	EXPECT_EQ(escapeUnitName(""), "");
	EXPECT_EQ(escapeUnitName("qemu_/srv/backup/vm-100"), "qemu_-srv-backup-vm\\x2d100");
	EXPECT_EQ(escapeUnitName(".x/.y"), "\\x2ex-.y");
	EXPECT_EQ(escapeUnitName("\xff\xfe/a b.-\\"), "\\xff\\xfe-a\\x20b.\\x2d\\x5c");
	EXPECT_EQ(escapeUnitName(std::string("a\0b", 3)), "a\\x00b");
	EXPECT_EQ(unescapeUnitName("qemu_-srv-backup-vm\\x2d100"), "qemu_/srv/backup/vm-100");
	EXPECT_EQ(unescapeUnitName("\\X41"), std::nullopt);
	EXPECT_EQ(unescapeUnitName("\\x4"), std::nullopt);
	EXPECT_EQ(unescapeUnitName("a\\"), std::nullopt);
	EXPECT_EQ(unescapeUnitName("\\xZZ"), std::nullopt);
	EXPECT_EQ(unescapeUnitName("\\x4A\\x4a"), "JJ");
}

TEST(UnitName, RoundTripsEveryByteString)
{
	for (const std::string &s : generatedStrings(500)) {
		const std::string escaped = escapeUnitName(s);
		EXPECT_EQ(unescapeUnitName(escaped), s);
	}
}

TEST(UnitName, EscapeMatchesSystemdEscape)
{
	if (!haveSystemdEscape())
		GTEST_SKIP() << "systemd-escape is not installed";
	const std::vector<std::string> inputs = generatedStrings(400);
	// Escaped names hold no blank, so one systemd-escape call takes a batch
	// and separates its results with single spaces.
	constexpr std::size_t kBatch = 50;
	std::size_t compared = 0;
	for (std::size_t first = 0; first < inputs.size(); first += kBatch) {
		std::vector<std::string> args = {"systemd-escape", "--"};
		std::string expected;
		for (std::size_t i = first; i < inputs.size() && i < first + kBatch; ++i) {
			args.push_back(inputs[i]);
			if (i != first)
				expected += ' ';
			expected += escapeUnitName(inputs[i]);
		}
		const Captured r = capture(args);
		ASSERT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
		EXPECT_EQ(r.out, expected + "\n");
		compared += args.size() - 2;
	}
	EXPECT_EQ(compared, 400U);
}

TEST(UnitName, UnescapeMatchesSystemdEscape)
{
	if (!haveSystemdEscape())
		GTEST_SKIP() << "systemd-escape is not installed";
	// Valid escapes (from escaping generated strings) and hostile ones.
	std::vector<std::string> inputs;
	std::size_t i = 0;
	for (const std::string &s : generatedStrings(150)) {
		if (s.find('\0') == std::string::npos && s.size() < 2000)
			inputs.push_back(escapeUnitName(s));
		// Generated text used as a unit name directly: stray backslashes,
		// half escapes, upper-case X and hex.
		if (++i % 2 == 0)
			inputs.push_back(s);
	}
	for (const char *extra : {"\\x", "\\x4", "\\x4g", "\\X41", "\\x41\\x4A", "a\\", "\\\\x41", "--",
				  "\\x2f\\x2d"})
		inputs.push_back(extra);
	ASSERT_GE(inputs.size(), 200U);
	for (const std::string &input : inputs) {
		if (input.empty())
			continue; // systemd-escape --unescape "" prints an empty line; covered above
		const Captured r = capture({"systemd-escape", "--unescape", "--", input});
		const std::optional<std::string> ours = unescapeUnitName(input);
		ASSERT_TRUE(WIFEXITED(r.status)) << input;
		if (WEXITSTATUS(r.status) != 0) {
			EXPECT_EQ(ours, std::nullopt) << "systemd-escape refused '" << input << "'";
			continue;
		}
		ASSERT_TRUE(ours.has_value()) << "we refused '" << input << "'";
		// systemd prints the result as a C string: it stops at an escaped NUL.
		const std::string expected = ours->substr(0, ours->find('\0'));
		EXPECT_EQ(r.out, expected + "\n") << input;
	}
}

} // namespace
} // namespace fr
