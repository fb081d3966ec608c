// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/helper_contract.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace fr::contract {
namespace {

Result<HelperArgs> parseAll(const std::vector<std::string> &words)
{
	std::vector<const char *> argv = {"file-restore-helper"};
	for (const std::string &w : words)
		argv.push_back(w.c_str());
	return parseHelperArgs(static_cast<int>(argv.size()), argv.data());
}

Result<StartRequest> parse(const std::vector<std::string> &words)
{
	Result<HelperArgs> all = parseAll(words);
	if (!all)
		return all.error();
	return all->start;
}

std::vector<std::string> typical()
{
	return {"start", "--name", "qemu_repo-vm-100", "--transport", "serial", "--socket",
		"/run/user/1000/file-restore/x.sock", "--ticket-fd", "3", "--image", "raw:/b/disk.img"};
}

std::vector<std::string> with(std::vector<std::string> words, const std::string &option,
			      const std::string &value)
{
	for (std::size_t i = 1; i + 1 < words.size(); ++i) {
		if (words[i] == option) {
			words[i + 1] = value;
			return words;
		}
	}
	words.push_back(option);
	words.push_back(value);
	return words;
}

TEST(Args, Version)
{
	Result<HelperArgs> a = parseAll({"--version"});
	ASSERT_TRUE(a);
	EXPECT_TRUE(a->version);
	EXPECT_FALSE(parse({"--version", "x"}));
	EXPECT_FALSE(parse({"--versio"}));
	EXPECT_FALSE(parse({}));
}

TEST(Args, TypicalSerialStart)
{
	Result<StartRequest> a = parse(with(with(with(typical(), "--memory", "512"), "--timeout", "600"),
				    "--log-fd", "4"));
	ASSERT_TRUE(a) << a.error().message();
	EXPECT_EQ(a->name, "qemu_repo-vm-100");
	EXPECT_EQ(a->transport, Transport::Serial);
	EXPECT_EQ(a->socketPath, "/run/user/1000/file-restore/x.sock");
	EXPECT_EQ(a->ticketFd, 3);
	EXPECT_EQ(a->logFd, 4);
	EXPECT_EQ(*a->memoryMiB, 512U);
	EXPECT_EQ(*a->timeout, 600U);
	ASSERT_EQ(a->images.size(), 1U);
	EXPECT_EQ(a->images[0].format, ImageFormat::Raw);
	EXPECT_EQ(a->images[0].path, "/b/disk.img");
}

TEST(Args, VsockStartWithCidAndManyImages)
{
	std::vector<std::string> w = {"start", "--name", "n", "--transport", "vsock", "--cid", "4242",
				      "--ticket-fd", "0"};
	for (const char *f : {"raw", "qcow2", "vmdk", "vdi", "vhdx"}) {
		w.push_back("--image");
		w.push_back(std::string(f) + ":/i/" + f);
	}
	Result<StartRequest> a = parse(w);
	ASSERT_TRUE(a) << a.error().message();
	EXPECT_EQ(a->transport, Transport::Vsock);
	EXPECT_EQ(*a->cid, 4242U);
	EXPECT_EQ(a->images.size(), 5U);
	EXPECT_EQ(a->images[1].format, ImageFormat::Qcow2);
	EXPECT_EQ(a->logFd, -1);
}

TEST(Args, EachOptionAtMostOnce)
{
	for (const char *option : {"--name", "--transport", "--socket", "--ticket-fd"}) {
		std::vector<std::string> w = typical();
		for (std::size_t i = 1; i < w.size(); i += 2)
			if (w[i] == option) {
				w.push_back(w[i]);
				w.push_back(w[i + 1]);
				break;
			}
		Result<StartRequest> a = parse(w);
		ASSERT_FALSE(a) << option;
		EXPECT_STREQ(a.error().reason(), "option given twice") << option;
	}
	for (const char *option : {"--memory", "--timeout", "--log-fd"}) {
		std::vector<std::string> w = with(typical(), option, "100");
		w.push_back(option);
		w.push_back("100");
		EXPECT_FALSE(parse(w)) << option;
	}
}

TEST(Args, NoAbbreviationsPermutationsOrGluedValues)
{
	EXPECT_FALSE(parse(with(typical(), "--mem", "512")));
	EXPECT_FALSE(parse(with(typical(), "-m", "512")));
	EXPECT_FALSE(parse(with(typical(), "--memory=512", "512")));
	std::vector<std::string> glued = typical();
	glued[1] = "--name=x";
	EXPECT_FALSE(parse(glued));
	// Options before the verb, a lone option, "--" terminator.
	std::vector<std::string> before = typical();
	before.insert(before.begin(), {"--name", "x"});
	EXPECT_FALSE(parse(before));
	std::vector<std::string> dangling = typical();
	dangling.push_back("--memory");
	EXPECT_FALSE(parse(dangling));
	std::vector<std::string> dashdash = typical();
	dashdash.insert(dashdash.begin() + 1, "--");
	EXPECT_FALSE(parse(dashdash));
}

TEST(Args, NumbersAreStrictDecimal)
{
	for (const char *bad : {"+512", "-512", "0x200", "0512", "512 ", " 512", "5e2", "",
				"99999999999999999999", "18446744073709551617", "63", "65537"}) {
		Result<StartRequest> a = parse(with(typical(), "--memory", bad));
		EXPECT_FALSE(a) << "--memory " << bad;
	}
	for (const char *bad : {"-1", "+3", "0x3", "03", "1048577", "4294967299"})
		EXPECT_FALSE(parse(with(typical(), "--ticket-fd", bad))) << bad;
	for (const char *bad : {"0", "9", "2", "4294967295", "4294967296", "0xa", "+10"}) {
		std::vector<std::string> w = {"start", "--name", "n", "--transport", "vsock", "--cid", bad,
					      "--ticket-fd", "3", "--image", "raw:/x"};
		EXPECT_FALSE(parse(w)) << "--cid " << bad;
	}
	for (const char *bad : {"0", "-5", "604801"})
		EXPECT_FALSE(parse(with(typical(), "--timeout", bad))) << bad;
}

TEST(Args, NoQemuSyntaxInAnyStringThatReachesQemu)
{
	for (const char *bad : {"a,b", "a=b", "a b", "a/b", "guest=x,debug-threads=on", "", ".", "..",
				"a\nb", "\xc3\xa9"})
		EXPECT_FALSE(parse(with(typical(), "--name", bad))) << bad;
	EXPECT_FALSE(parse(with(typical(), "--name", std::string(256, 'a'))));
	EXPECT_TRUE(parse(with(typical(), "--name", std::string(255, 'a'))));
	EXPECT_TRUE(parse(with(typical(), "--name", "qemu_a\\x2db:c.d")));
	for (const char *bad : {"/tmp/a,b.sock", "/tmp/a=b", "relative.sock", "/tmp/../x", "/tmp//x",
				"/tmp/a b", "/tmp/x\n"})
		EXPECT_FALSE(parse(with(typical(), "--socket", bad))) << bad;
	EXPECT_FALSE(parse(with(typical(), "--socket", "/" + std::string(107, 'a'))));
	for (const char *bad : {"serial,x", "vsock ", "SERIAL", "serial=on"})
		EXPECT_FALSE(parse(with(typical(), "--transport", bad))) << bad;
	for (const char *bad : {"raw,x:/a", "qcow2", "QCOW2:/a", "raw:relative", "raw:/a/../b",
				"raw:/a\n", "parallels:/a", ":/a", "raw:", "nbd:/a", "nbd:2", "nbd:03"})
		EXPECT_FALSE(parse(with(typical(), "--image", bad))) << bad;
}

TEST(Args, ImagePathsMayHoldAnyPrintableByte)
{
	// Image paths never reach QEMU's command line (fdsets), so file names
	// with commas, '=' or spaces are fine.
	Result<StartRequest> a = parse(with(typical(), "--image", "raw:/b/a,b=c d.img"));
	ASSERT_TRUE(a);
	EXPECT_EQ(a->images[0].path, "/b/a,b=c d.img");
}

TEST(Args, TransportSpecificOptions)
{
	std::vector<std::string> noSocket = {"start", "--name", "n", "--transport", "serial",
					     "--ticket-fd", "3", "--image", "raw:/x"};
	EXPECT_FALSE(parse(noSocket));
	EXPECT_FALSE(parse(with(typical(), "--cid", "10")));
	std::vector<std::string> vsockSocket = {"start", "--name", "n", "--transport", "vsock",
						"--socket", "/tmp/s", "--ticket-fd", "3", "--image", "raw:/x"};
	EXPECT_FALSE(parse(vsockSocket));
}

TEST(Args, RequiredOptionsAndFdRules)
{
	for (const char *missing : {"--name", "--transport", "--ticket-fd", "--image"}) {
		std::vector<std::string> w = {"start"};
		std::vector<std::string> t = typical();
		for (std::size_t i = 1; i + 1 < t.size(); i += 2)
			if (t[i] != missing) {
				w.push_back(t[i]);
				w.push_back(t[i + 1]);
			}
		Result<StartRequest> a = parse(w);
		ASSERT_FALSE(a) << missing;
		EXPECT_STREQ(a.error().call(), missing);
	}
	EXPECT_FALSE(parse(with(typical(), "--ticket-fd", "1")));
	EXPECT_FALSE(parse(with(typical(), "--ticket-fd", "2")));
	EXPECT_FALSE(parse(with(typical(), "--log-fd", "1")));
	EXPECT_FALSE(parse(with(typical(), "--log-fd", "0")));
	EXPECT_FALSE(parse(with(typical(), "--log-fd", "3"))); // same as the ticket
	EXPECT_TRUE(parse(with(typical(), "--log-fd", "2")));
}

TEST(Args, CountAndLengthLimits)
{
	std::vector<std::string> many = typical();
	while (many.size() + 1 <= static_cast<std::size_t>(kMaxArgc))
		many.insert(many.end(), {"--image", "raw:/x"});
	Result<StartRequest> a = parse(many);
	ASSERT_FALSE(a);
	std::vector<std::string> images = typical();
	for (std::size_t i = 1; i < kMaxImages; ++i)
		images.insert(images.end(), {"--image", "raw:/x"});
	ASSERT_TRUE(parse(images));
	images.insert(images.end(), {"--image", "raw:/x"});
	EXPECT_FALSE(parse(images));
	EXPECT_FALSE(parse(with(typical(), "--image", "raw:/" + std::string(kMaxArgLength, 'a'))));
	EXPECT_FALSE(parse(with(typical(), "--image", "raw:/" + std::string(4096, 'a'))));
	Result<StartRequest> unknown = parse(with(typical(), "--bogus", "1"));
	ASSERT_FALSE(unknown);
	EXPECT_EQ(unknown.error().message(), "usage(--bogus): unknown option");
}

TEST(Args, NbdImagesAreFdNumbersNotAlreadyNamed)
{
	Result<StartRequest> a = parse(with(with(typical(), "--image", "nbd:7"), "--log-fd", "4"));
	ASSERT_TRUE(a) << a.error().message();
	EXPECT_EQ(a->images[0].format, ImageFormat::Nbd);
	EXPECT_EQ(a->images[0].fd, 7);
	EXPECT_TRUE(a->images[0].path.empty());
	EXPECT_FALSE(parse(with(with(typical(), "--image", "nbd:4"), "--log-fd", "4")));
	EXPECT_FALSE(parse(with(typical(), "--image", "nbd:3"))); // the ticket
	std::vector<std::string> twice = with(typical(), "--image", "nbd:7");
	twice.insert(twice.end(), {"--image", "nbd:7"});
	EXPECT_FALSE(parse(twice));
}

// What the client formats, the helper parses back unchanged: the grammar is
// written once.
TEST(Contract, FormatAndParseAgree)
{
	StartRequest r;
	r.name = "qemu_repo-vm-100\\x2d1";
	r.transport = Transport::Serial;
	r.socketPath = "/run/user/1000/file-restore/x.sock";
	r.memoryMiB = 512;
	r.timeout = 300;
	r.logFd = kLogFd;
	r.images = {{ImageFormat::Qcow2, "/b/a,b=c.qcow2", -1}, {ImageFormat::Nbd, "", kFirstNbdFd},
		    {ImageFormat::Raw, "/b/disk.img", -1}};
	const std::vector<std::string> argv = formatStartArgs("/usr/libexec/file-restore-helper", r);
	EXPECT_EQ(argv[0], "/usr/libexec/file-restore-helper");
	EXPECT_EQ(argv[1], "start");
	std::vector<std::string> tail(argv.begin() + 1, argv.end());
	Result<StartRequest> back = parse(tail);
	ASSERT_TRUE(back) << back.error().message();
	EXPECT_EQ(*back, r);
	StartRequest v;
	v.name = "n";
	v.transport = Transport::Vsock;
	v.cid = 4242;
	v.images = {{ImageFormat::Vmdk, "/x.vmdk", -1}};
	const std::vector<std::string> vargv = formatStartArgs("/h", v);
	back = parse(std::vector<std::string>(vargv.begin() + 1, vargv.end()));
	ASSERT_TRUE(back) << back.error().message();
	EXPECT_EQ(*back, v);
}

TEST(Contract, StartLineAndMarker)
{
	EXPECT_EQ(startLine(1234, std::nullopt), "{\"pid\":1234,\"cid\":null}\n");
	EXPECT_EQ(startLine(99, 4242), "{\"pid\":99,\"cid\":4242}\n");
	EXPECT_EQ(qemuNameArgument("vm-1"), "guest=file-restore:vm-1");
	using namespace std::string_view_literals;
	EXPECT_EQ(markedVmName("/usr/bin/qemu\0-name\0guest=file-restore:vm-1\0-m\0256"sv), "vm-1");
	EXPECT_EQ(markedVmName("q\0-name\0guest=file-restore:vm,debug-threads=on"sv), "vm");
	EXPECT_FALSE(markedVmName("q\0-name\0guest=other:vm-1"sv));
	EXPECT_FALSE(markedVmName("q\0guest=file-restore:vm-1"sv)); // not after -name
	EXPECT_FALSE(markedVmName(""sv));
	EXPECT_STRNE(helperExitAdvice(3), helperExitAdvice(4));
}

TEST(HelperContract, CountsOnlyMarkedQemusOfTheUser)
{
	// A stand-in "QEMU": a shell started with argv[0] = the binary path and
	// the marker as arguments, the way the helper starts QEMU.
	auto spawn = [](const char *marker) {
		const pid_t pid = ::fork();
		if (pid == 0) {
			const char *argv[] = {"/bin/sh", "-c", "while :; do sleep 1; done", "-name", marker, nullptr};
			::execv("/bin/sh", const_cast<char **>(argv));
			::_exit(127);
		}
		return pid;
	};
	const std::uint32_t before = countMarkedQemus(::getuid(), "/bin/sh");
	const pid_t a = spawn("guest=file-restore:a");
	const pid_t b = spawn("guest=something-else");
	// Wait until both have exec'd.
	for (int i = 0; i < 200 && countMarkedQemus(::getuid(), "/bin/sh") == before; ++i)
		::usleep(10000);
	::usleep(50000);
	EXPECT_EQ(countMarkedQemus(::getuid(), "/bin/sh"), before + 1);
	EXPECT_EQ(countMarkedQemus(::getuid() + 1, "/bin/sh"), 0U);
	for (pid_t p : {a, b}) {
		::kill(p, SIGKILL);
		::waitpid(p, nullptr, 0);
	}
	EXPECT_EQ(countMarkedQemus(::getuid(), "/bin/sh"), before);
}

} // namespace
} // namespace fr::contract
