// SPDX-License-Identifier: AGPL-3.0-or-later
// The VM lifecycle with a fake helper and fake QEMU ($FAKE_HELPER) and a
// fake guest protocol: start, reuse, stale VMs, wrong tickets, concurrent
// first calls, status, stop, a corrupt map and its orphans.
#include "client/vm_manager.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cstdlib>

#include <gtest/gtest.h>

#include "client/process.h"
#include "shared/guest_abi.h"
#include "client/vm_name.h"
#include "fake_session.h"
#include "reaper.h"
#include "test_util.h"

namespace fr::client {
namespace {

using test::readFile;
using test::TempDir;

int countLines(const std::string &text)
{
	return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

bool gone(pid_t pid)
{
	for (int i = 0; i < 200; ++i) {
		test::reapExited();
		const std::string cmdline = readFile("/proc/" + std::to_string(pid) + "/cmdline");
		if (cmdline.empty())
			return true;
		::usleep(10000);
	}
	return false;
}

// vsock is never dialled for real here (this machine's /dev/vsock is not
// ours): this dialer records the CID it was asked for and plays the guest
// over a socketpair, greeting with the VM's ticket like the fake QEMU.
class FakeVsockDialer final : public Dialer {
public:
	Result<UniqueFd> dial(const VmRecord &vm) override
	{
		if (vm.transport != Transport::Vsock || !vm.cid || !vm.socketPath.empty())
			return Error(EINVAL, "dial", "not a vsock VM");
		cids.push_back(*vm.cid);
		int sv[2];
		if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
			return Error(errno, "socketpair", "");
		(void)!::write(sv[1], vm.ticket.data(), vm.ticket.size());
		guests.emplace_back(sv[1]);
		return UniqueFd(sv[0]);
	}
	std::vector<std::uint32_t> cids;
	std::vector<UniqueFd> guests;
};

// One client: its runtime directory, store, seams and messages.
struct Client {
	explicit Client(const std::string &base, test::FakeGuest &guest, Dialer *customDialer = nullptr,
			bool vhostVsock = false)
		: dir(openRuntimeDir(base).value()), store(dir.fd.get(), dir.path),
		  helper(std::getenv("FAKE_HELPER")), sessions(guest)
	{
		ManagerContext ctx;
		ctx.dir = &dir;
		ctx.store = &store;
		ctx.helper = &helper;
		ctx.dialer = customDialer != nullptr ? customDialer : &dialer;
		ctx.vhostVsockUsable = vhostVsock;
		ctx.sessions = &sessions;
		ctx.warn = [this](const std::string &m) { warnings += m + "\n"; };
		ctx.verbose = true;
		ctx.reuseTimeout = std::chrono::seconds(2);
		ctx.stopGrace = std::chrono::seconds(2);
		manager = std::make_unique<VmManager>(std::move(ctx));
	}
	StateMap map()
	{
		std::optional<CorruptMap> corrupt;
		return *store.read(Clock::now() + std::chrono::seconds(5), corrupt);
	}

	RuntimeDir dir;
	StateStore store;
	SpawnHelperRunner helper;
	SystemDialer dialer;
	test::FakeSessionFactory sessions;
	std::unique_ptr<VmManager> manager;
	std::string warnings;
};

class ManagerTest : public ::testing::Test {
protected:
	static void SetUpTestSuite() { test::becomeSubreaper(); }
	void SetUp() override
	{
		ASSERT_NE(std::getenv("FAKE_HELPER"), nullptr);
		::setenv("FAKE_HELPER_LOG", (scratch_ / "calls").c_str(), 1);
		::setenv("FAKE_HELPER_MODE", "ok", 1);
		ASSERT_EQ(::chmod(base_.path().c_str(), 0700), 0);
		client_ = std::make_unique<Client>(base_.path(), guest_);
		spec_.name = "qemu_-srv-b-vm-100-s";
		spec_.archives = {{"a.img", ImageFormat::Raw, "/srv/b/vm/100/s/a.img"}};
		spec_.transport = TransportChoice::Serial;
		guest_.dirs["/disk0"] = {{.name = "part", .type = EntryType::Virtual}};
	}
	void TearDown() override
	{
		// Stop whatever the test left running.
		for (const VmRecord &vm : client_->map().vms)
			(void)terminateVerified(vm.pid, vm.startTime, vm.name, std::chrono::seconds(1));
		test::reapExited();
	}
	Deadline in(int seconds) const { return Clock::now() + std::chrono::seconds(seconds); }
	int starts() const { return countLines(readFile(scratch_ / "calls")); }

	TempDir base_;
	TempDir scratch_;
	test::FakeGuest guest_;
	std::unique_ptr<Client> client_;
	VmSpec spec_;
};

TEST_F(ManagerTest, StartsOnceThenReuses)
{
	pid_t pid = 0;
	{
		Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
		ASSERT_TRUE(vm) << vm.error().message() << client_->warnings;
		EXPECT_TRUE(vm->started());
		pid = vm->record().pid;
		std::vector<std::string> names;
		ASSERT_TRUE(vm->session().list("/disk0", [&](const GuestEntry &e) noexcept {
			names.push_back(e.name);
			return Status{};
		}));
		EXPECT_EQ(names, std::vector<std::string>{"part"});
	}
	const StateMap map = client_->map();
	ASSERT_EQ(map.vms.size(), 1U);
	const VmRecord &record = map.vms[0];
	EXPECT_EQ(record.pid, pid);
	EXPECT_EQ(record.startTime, *readStartTime(pid));
	EXPECT_EQ(record.ticket.size(), 64U);
	// A fresh socket path per start: "<stem>-<random>.sock".
	const std::string prefix = client_->dir.path + "/" + vmFileStem(spec_.name) + "-";
	EXPECT_TRUE(record.socketPath.starts_with(prefix) && record.socketPath.ends_with(".sock"))
		<< record.socketPath;
	EXPECT_EQ(record.archives, spec_.archives);
	EXPECT_EQ(test::modeOf(record.socketPath) & S_IFMT, static_cast<mode_t>(S_IFSOCK));

	Result<VmConnection> again = client_->manager->acquire(spec_, in(10));
	ASSERT_TRUE(again) << again.error().message();
	EXPECT_FALSE(again->started());
	EXPECT_EQ(again->record().pid, pid);
	EXPECT_EQ(starts(), 1);
	// Every call gets a fresh 256-bit ticket (helper log: "|ticket=...").
	EXPECT_NE(readFile(scratch_ / "calls").find("|ticket=" + record.ticket), std::string::npos);
}

TEST_F(ManagerTest, VsockTransportUsesTheCidTheHelperReserved)
{
	FakeVsockDialer vsock;
	Client viaVsock(base_.path(), guest_, &vsock, true);
	spec_.transport = TransportChoice::Auto; // vhost-vsock "usable": auto is vsock
	pid_t pid = 0;
	{
		Result<VmConnection> vm = viaVsock.manager->acquire(spec_, in(10));
		ASSERT_TRUE(vm) << vm.error().message() << viaVsock.warnings;
		EXPECT_TRUE(vm->started());
		EXPECT_EQ(vm->record().transport, Transport::Vsock);
		EXPECT_EQ(*vm->record().cid, 42U);
		EXPECT_TRUE(vm->record().socketPath.empty());
		pid = vm->record().pid;
	}
	Result<VmConnection> again = viaVsock.manager->acquire(spec_, in(10));
	ASSERT_TRUE(again);
	EXPECT_FALSE(again->started());
	EXPECT_EQ(vsock.cids, (std::vector<std::uint32_t>{42, 42}));
	const std::string calls = readFile(scratch_ / "calls");
	EXPECT_NE(calls.find("--transport\x1fvsock\x1f"), std::string::npos) << calls;
	EXPECT_EQ(calls.find("--socket"), std::string::npos) << calls;
	const StateMap map = viaVsock.map();
	ASSERT_EQ(map.vms.size(), 1U);
	EXPECT_EQ(map.vms[0].cid, std::optional<std::uint32_t>(42));
	EXPECT_EQ(map.vms[0].pid, pid);
}

TEST(Transport, ChoiceAndAddresses)
{
	EXPECT_EQ(resolveTransport(TransportChoice::Auto, true), Transport::Vsock);
	EXPECT_EQ(resolveTransport(TransportChoice::Auto, false), Transport::Serial);
	EXPECT_EQ(resolveTransport(TransportChoice::Serial, true), Transport::Serial);
	EXPECT_EQ(resolveTransport(TransportChoice::Vsock, false), Transport::Vsock);
	const sockaddr_vm vm = vsockAddress(4242);
	EXPECT_EQ(vm.svm_family, AF_VSOCK);
	EXPECT_EQ(vm.svm_cid, 4242U);
	EXPECT_EQ(vm.svm_port, abi::kVsockPort);
	EXPECT_TRUE(unixAddress("/run/user/1000/file-restore/vm-0123456789abcdef.sock"));
	EXPECT_EQ(unixAddress("/" + std::string(107, 'x')).error().errnum(), ENAMETOOLONG);
	EXPECT_TRUE(unixAddress("/" + std::string(106, 'x')));
	// This machine has no /dev/vhost-vsock (CI): auto means serial here.
	if (::access(kVhostVsockDevice, F_OK) != 0) {
		EXPECT_FALSE(vhostVsockUsable());
	}
}

TEST_F(ManagerTest, KilledQemuIsRestarted)
{
	pid_t first = 0;
	{
		Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
		ASSERT_TRUE(vm);
		first = vm->record().pid;
	}
	::kill(first, SIGKILL);
	ASSERT_TRUE(gone(first));
	const std::string oldSocket = client_->map().vms.at(0).socketPath;
	Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
	ASSERT_TRUE(vm) << vm.error().message();
	EXPECT_TRUE(vm->started());
	EXPECT_NE(vm->record().pid, first);
	EXPECT_EQ(starts(), 2);
	// The dead VM's socket was removed; the new one has its own path.
	EXPECT_NE(vm->record().socketPath, oldSocket);
	EXPECT_FALSE(test::exists(oldSocket));
}

TEST_F(ManagerTest, UnlistedQemuOfTheSameNameIsStoppedBeforeAStart)
{
	pid_t first = 0;
	{
		Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
		ASSERT_TRUE(vm);
		first = vm->record().pid;
	}
	// As if the map had lost it (or a call died before recording it).
	std::optional<CorruptMap> corrupt;
	ASSERT_TRUE(client_->store.update(in(5),
		[](StateMap &map, bool &changed) {
			map.vms.clear();
			changed = true;
			return Status{};
		},
		corrupt));
	Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
	ASSERT_TRUE(vm) << vm.error().message();
	EXPECT_TRUE(vm->started());
	EXPECT_TRUE(gone(first));
	EXPECT_NE(client_->warnings.find("stopped an earlier QEMU"), std::string::npos) << client_->warnings;
}

TEST_F(ManagerTest, VmThatFailsTheHandshakeIsKilledAndReplaced)
{
	pid_t first = 0;
	{
		Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
		ASSERT_TRUE(vm);
		first = vm->record().pid;
	}
	// Our ticket no longer matches what the VM knows (as if a stranger's
	// VM squatted its address).
	std::optional<CorruptMap> corrupt;
	ASSERT_TRUE(client_->store.update(in(5),
		[](StateMap &map, bool &changed) {
			map.vms[0].ticket = std::string(64, 'f');
			changed = true;
			return Status{};
		},
		corrupt));
	Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
	ASSERT_TRUE(vm) << vm.error().message();
	EXPECT_TRUE(vm->started());
	EXPECT_TRUE(gone(first));
	EXPECT_NE(client_->warnings.find("did not answer"), std::string::npos);
}

TEST_F(ManagerTest, HandshakeRetriedWhileTheGuestBoots)
{
	guest_.failHandshakes = 3;
	Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
	ASSERT_TRUE(vm) << vm.error().message();
	EXPECT_EQ(guest_.handshakes, 4);
}

TEST_F(ManagerTest, OtherDisksMeanAnotherVm)
{
	pid_t first = 0;
	{
		Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
		ASSERT_TRUE(vm);
		first = vm->record().pid;
	}
	spec_.archives.push_back({"b.img", ImageFormat::Raw, "/srv/b/vm/100/s/b.img"});
	Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
	ASSERT_TRUE(vm);
	EXPECT_TRUE(vm->started());
	EXPECT_TRUE(gone(first));
	EXPECT_EQ(vm->record().archives.size(), 2U);
}

TEST_F(ManagerTest, VmThatNeverAnswersIsKilledAfterTheBootTimeout)
{
	::setenv("FAKE_HELPER_MODE", "mute", 1);
	Result<VmConnection> vm = client_->manager->acquire(spec_, Clock::now() + std::chrono::milliseconds(1500));
	ASSERT_FALSE(vm);
	EXPECT_EQ(vm.error().errnum(), ETIMEDOUT);
	EXPECT_TRUE(client_->map().vms.empty());
	// Its log was shown (verbose), and its QEMU is gone.
	EXPECT_NE(client_->warnings.find("fake qemu: booting"), std::string::npos);
	for (const QemuProcess &q : findOurQemus())
		if (fdTarget(q.pid, 1).starts_with(client_->dir.path + "/"))
			ADD_FAILURE() << "pid " << q.pid << " still runs";
}

TEST_F(ManagerTest, QemuDyingAtOnceIsReportedWithItsLog)
{
	::setenv("FAKE_HELPER_MODE", "die", 1);
	Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
	ASSERT_FALSE(vm);
	EXPECT_EQ(vm.error().errnum(), EHOSTDOWN);
	EXPECT_NE(client_->warnings.find("fake qemu: booting"), std::string::npos);
	EXPECT_TRUE(client_->map().vms.empty());
}

TEST_F(ManagerTest, HelperRefusalLeavesNoEntry)
{
	::setenv("FAKE_HELPER_MODE", "denied", 1);
	Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
	ASSERT_FALSE(vm);
	EXPECT_EQ(vm.error().errnum(), EACCES);
	EXPECT_TRUE(client_->map().vms.empty());
}

TEST_F(ManagerTest, ConcurrentFirstCallsStartExactlyOneVm)
{
	constexpr int kCalls = 8;
	std::vector<pid_t> children;
	for (int i = 0; i < kCalls; ++i) {
		const pid_t child = ::fork();
		if (child == 0) {
			test::FakeGuest guest;
			guest.dirs["/disk0"] = {{.name = "part", .type = EntryType::Virtual}};
			Client client(base_.path(), guest);
			Result<VmConnection> vm = client.manager->acquire(spec_, in(30));
			int listed = 0;
			const bool ok = vm && vm->session().list("/disk0", [&](const GuestEntry &) noexcept {
				++listed;
				return Status{};
			});
			_exit(ok && listed == 1 ? 0 : 1);
		}
		children.push_back(child);
	}
	for (pid_t child : children) {
		int status = 0;
		ASSERT_EQ(::waitpid(child, &status, 0), child);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	EXPECT_EQ(starts(), 1);
	EXPECT_EQ(client_->map().vms.size(), 1U);
}

TEST_F(ManagerTest, StatusShowsRunningAndBusyAndForgetsExited)
{
	VmSpec other = spec_;
	other.name = "qemu_image-x.img";
	pid_t otherPid = 0;
	{
		ASSERT_TRUE(client_->manager->acquire(spec_, in(10)));
		Result<VmConnection> vm = client_->manager->acquire(other, in(10));
		ASSERT_TRUE(vm);
		otherPid = vm->record().pid;
	}
	{
		// A call holding the first VM makes it "busy", not stale.
		Result<VmConnection> held = client_->manager->acquire(spec_, in(10));
		ASSERT_TRUE(held);
		Result<std::vector<VmStatusRow>> rows = client_->manager->status(in(10));
		ASSERT_TRUE(rows) << rows.error().message();
		ASSERT_EQ(rows->size(), 2U);
		EXPECT_EQ((*rows)[0].state, "busy");
		EXPECT_EQ((*rows)[1].state, "running");
		ASSERT_TRUE((*rows)[1].guest);
		EXPECT_EQ(*(*rows)[1].guest->idleLeftSeconds, 595U);
	}
	::kill(otherPid, SIGKILL);
	ASSERT_TRUE(gone(otherPid));
	Result<std::vector<VmStatusRow>> rows = client_->manager->status(in(10));
	ASSERT_TRUE(rows);
	ASSERT_EQ(rows->size(), 1U);
	EXPECT_EQ((*rows)[0].record.name, spec_.name);
	EXPECT_EQ(client_->map().vms.size(), 1U);
}

TEST_F(ManagerTest, StopPowersOffAndForgets)
{
	pid_t pid = 0;
	{
		Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
		ASSERT_TRUE(vm);
		pid = vm->record().pid;
	}
	ASSERT_TRUE(client_->manager->stop(spec_.name, in(10)));
	EXPECT_TRUE(gone(pid));
	EXPECT_TRUE(client_->map().vms.empty());
	// The fake guest powered itself off on request (no kill needed).
	EXPECT_EQ(client_->warnings.find("did not power off"), std::string::npos);
	Status unknown = client_->manager->stop(spec_.name, in(10));
	ASSERT_FALSE(unknown);
	EXPECT_EQ(unknown.error().errnum(), ENOENT);
}

TEST_F(ManagerTest, AVmInUseMakesOthersWaitUntilTheirDeadline)
{
	Result<VmConnection> held = client_->manager->acquire(spec_, in(10));
	ASSERT_TRUE(held);
	Client other(base_.path(), guest_);
	const auto before = Clock::now();
	Result<VmConnection> waited =
		other.manager->acquire(spec_, Clock::now() + std::chrono::milliseconds(400));
	ASSERT_FALSE(waited);
	EXPECT_EQ(waited.error().errnum(), ETIMEDOUT);
	EXPECT_NE(waited.error().message().find("busy"), std::string::npos);
	EXPECT_GE(Clock::now() - before, std::chrono::milliseconds(390));
	EXPECT_EQ(starts(), 1);
}

TEST_F(ManagerTest, StopKillsAVmInUse)
{
	Result<VmConnection> held = client_->manager->acquire(spec_, in(10));
	ASSERT_TRUE(held);
	const pid_t pid = held->record().pid;
	Client other(base_.path(), guest_);
	ASSERT_TRUE(other.manager->stop(spec_.name, in(10)));
	EXPECT_TRUE(gone(pid));
	EXPECT_NE(other.warnings.find("in use"), std::string::npos);
}

TEST_F(ManagerTest, CorruptMapIsReportedAndItsOrphansStopped)
{
	pid_t pid = 0;
	{
		Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
		ASSERT_TRUE(vm);
		pid = vm->record().pid;
	}
	// A second user session (another runtime dir) with a VM of its own.
	TempDir otherBase;
	ASSERT_EQ(::chmod(otherBase.path().c_str(), 0700), 0);
	Client other(otherBase.path(), guest_);
	VmSpec otherSpec = spec_;
	otherSpec.name = "qemu_image-other.img";
	pid_t otherPid = 0;
	{
		Result<VmConnection> vm = other.manager->acquire(otherSpec, in(10));
		ASSERT_TRUE(vm);
		otherPid = vm->record().pid;
	}

	test::writeFile(client_->dir.path + "/vm-map.json", "{\"version\":1,\"vms\":[{\"na", 0600);
	Result<std::vector<VmStatusRow>> rows = client_->manager->status(in(10));
	ASSERT_TRUE(rows) << rows.error().message();
	EXPECT_TRUE(rows->empty());
	EXPECT_NE(client_->warnings.find("could not be read"), std::string::npos);
	EXPECT_NE(client_->warnings.find("vm-map.json.corrupt-"), std::string::npos);
	EXPECT_NE(client_->warnings.find("stopped VM " + spec_.name), std::string::npos);
	EXPECT_TRUE(gone(pid));
	// The other runtime directory's VM is not ours to stop.
	EXPECT_EQ(verifyProcess(otherPid, *readStartTime(otherPid), otherSpec.name)->state,
		  ProcessState::Ours);
	(void)other.manager->stop(otherSpec.name, in(10));

	// And the next call recovers: a new VM, a valid map.
	Result<VmConnection> vm = client_->manager->acquire(spec_, in(10));
	ASSERT_TRUE(vm) << vm.error().message();
	EXPECT_TRUE(vm->started());
	EXPECT_EQ(client_->map().vms.size(), 1U);
}

} // namespace
} // namespace fr::client
