// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The VM lifecycle seen from the client: find the VM of a snapshot in the
// state map and reuse it if it still answers the mutual handshake, else
// start one through the helper; stop VMs; report on them; clean up after
// VMs that died, stopped answering or were orphaned by a corrupt map.
//
// Locking (docs/client.md, "Concurrency"):
//  - the state map's lock is held only to read or change the map, never
//    while a VM boots or a request runs;
//  - each VM has a lock file (<stem>.lock): shared by every call that talks
//    to the VM, for its whole use of it, exclusive for starting, repairing
//    and stopping it. So concurrent first calls on one snapshot start
//    exactly one VM (the others wait, then use it), and calls on a running
//    VM run side by side;
//  - at most kMaxRequests calls use one VM at once, each holding one of its
//    slot lock files (<stem>.slot<N>); more wait for a slot until their
//    --timeout, then fail with EBUSY ("busy");
//  - a serial VM's one connection is shared through its channel broker
//    (client/channel_broker.h), started with the VM (or again, when it is
//    gone) under the exclusive lock.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/file_lock.h"
#include "client/helper_launcher.h"
#include "client/runtime_dir.h"
#include "client/session.h"
#include "client/state_store.h"
#include "client/transport.h"
#include "client/types.h"

namespace fr::client {

// What a call wants: the VM's name and disks, and how to start it if needed.
struct VmSpec {
	std::string name;
	std::vector<Archive> archives;
	TransportChoice transport = TransportChoice::Auto;
	std::optional<std::uint32_t> memoryMib;
	std::optional<std::uint32_t> idleTimeout;
	// Disks served over NBD (a PBS datastore, client/pbs_source.h): starts
	// their servers, logging to the fd given (nbdLogName), and returns the
	// sockets QEMU gets, one per Nbd archive in order. Called only when a
	// VM starts.
	std::function<Result<std::vector<UniqueFd>>(int logFd)> startNbdServers;
	// What `status` shows the VM serves: a PBS datastore and snapshot.
	std::string datastore;
	std::string snapshot;
};

// Requests one VM serves at once (proxmox-file-restore's daemon allows 8
// downloads).
inline constexpr int kMaxRequests = 8;

// How a stop went.
enum class StopOutcome {
	PoweredOff,  // the guest powered off when asked
	Killed,      // it did not: its QEMU was killed
	KilledInUse, // another call held it past the grace period: killed
	NotRunning,  // its QEMU was gone already: only the entry was removed
};
// The log of a VM's NBD servers in the runtime directory (their reports
// of bad chunks): "<stem>.nbd.log".
std::string nbdLogName(const std::string &vmName);

// The seams and settings a manager works with.
struct ManagerContext {
	const RuntimeDir *dir = nullptr;
	StateStore *store = nullptr;
	HelperRunner *helper = nullptr;
	Dialer *dialer = nullptr;
	SessionFactory *sessions = nullptr;
	// Warnings and notes for the user (stderr), one message per call.
	std::function<void(const std::string &)> warn;
	// Progress notes for a person at a terminal ("starting restore
	// VM…"); unset for programs.
	std::function<void(const std::string &)> note;
	// -v: show the VM's log when it fails.
	bool verbose = false;
	bool vhostVsockUsable = false;
	// How long an existing VM gets to answer before it counts as stale (a
	// booted guest answers in milliseconds; this also covers one still
	// booting for a call that was killed).
	std::chrono::milliseconds reuseTimeout = std::chrono::seconds(15);
	// The longest a request waits for the guest to make progress.
	std::chrono::milliseconds ioTimeout = std::chrono::seconds(120);
	// Time a VM gets to power off after a stop request.
	std::chrono::milliseconds stopGrace = std::chrono::seconds(5);
	// A VM that has not answered this long after its start is broken (a
	// call whose --timeout ran out earlier leaves a booting VM for the
	// next call, which waits for it until then).
	std::chrono::milliseconds bootLimit = std::chrono::seconds(120);
	// Time a channel broker gets to connect to QEMU's socket.
	std::chrono::milliseconds brokerConnect = std::chrono::seconds(10);
};

// One more session with a VM this call already holds (a mount's second
// and third): its request slot and the session.
class VmLease {
public:
	VmLease(FileLock slot, std::unique_ptr<VmSession> session)
		: slot_(std::move(slot)), session_(std::move(session))
	{
	}
	VmSession &session() { return *session_; }

private:
	FileLock slot_;
	std::unique_ptr<VmSession> session_;
};

// A VM this call holds: its lock (shared), a request slot, its record and an
// authenticated session.
class VmConnection {
public:
	VmConnection(FileLock lock, FileLock slot, VmRecord record, std::unique_ptr<VmSession> session,
		     bool started)
		: lock_(std::move(lock)), slot_(std::move(slot)), record_(std::move(record)),
		  session_(std::move(session)), started_(started)
	{
	}
	VmSession &session() { return *session_; }
	const VmRecord &record() const { return record_; }
	// Whether this call booted the VM.
	bool started() const { return started_; }
	// Lets go of the VM's locks (a mount whose VM died: calls that start
	// a new one must not wait for it). The session stays, unusable.
	void releaseLocks()
	{
		slot_.release();
		lock_.release();
	}

private:
	FileLock lock_;
	FileLock slot_;
	VmRecord record_;
	std::unique_ptr<VmSession> session_;
	bool started_;
};

struct VmStatusRow {
	VmRecord record;
	// "running", "starting" (booting, or held by a call that starts or
	// stops it), "stopped" (did not answer; killed and removed).
	std::string state;
	std::optional<GuestStatus> guest;
	std::string problem;
};

class VmManager {
public:
	explicit VmManager(ManagerContext context) : ctx_(std::move(context)) {}

	// Reuses or starts the VM for `spec` and returns it connected.
	// EINPROGRESS when the deadline passed while the VM boots (it keeps
	// booting: the next call finds it), EBUSY when all its request slots
	// stayed taken.
	Result<VmConnection> acquire(const VmSpec &spec, Deadline deadline);

	// Another session with the VM of `held` (counted against its slots).
	Result<VmLease> lease(const VmConnection &held, Deadline deadline);

	// Stops the named VM: a guest stop request, then SIGTERM/SIGKILL
	// through a verified pidfd if it lingers (or at once when another call
	// holds it past a short wait). ENOENT when the map has no such VM.
	Result<StopOutcome> stop(const std::string &name, Deadline deadline);

	// Every VM in the map, asked for its status without resetting its
	// idle timer. Entries whose QEMU is gone are dropped; VMs that do not
	// answer are killed and dropped; orphaned QEMUs of ours are stopped.
	Result<std::vector<VmStatusRow>> status(Deadline deadline);

	// Names in the map (no VM is contacted): for shell completion.
	Result<std::vector<std::string>> names(Deadline deadline);

	// Stops QEMUs of this user whose log lives in our runtime directory but
	// that the map does not list (a corrupt map, a client killed between
	// the helper's answer and the map update): no ticket, no way to talk to
	// them, and they count against the helper's per-user VM limit.
	void stopOrphans(Deadline deadline);

	// The last lines of the VM's console log (escaped for display).
	// `fileName`: another of its files in the runtime directory (the NBD
	// servers' log) instead of the console log.
	std::string logTail(const std::string &vmName, std::size_t maxLines,
			    const std::string &fileName = {}) const;

private:
	Result<StateMap> readMap(Deadline deadline);
	Status updateMap(Deadline deadline, const StateStore::Change &change);
	// A session with the VM (its handshake retried while it boots).
	// EHOSTDOWN: its QEMU is gone; ENOTCONN: its channel broker is (serial);
	// ETIMEDOUT: no answer by the deadline.
	Result<std::unique_ptr<VmSession>> connect(const VmRecord &vm, Deadline deadline,
						       bool booting);
	// Connects to a VM found in the map, waiting for one that boots.
	// EINPROGRESS: still booting at the deadline.
	Result<std::unique_ptr<VmSession>> useExisting(const VmRecord &vm, Deadline deadline);
	Result<FileLock> takeSlot(const std::string &vmName, Deadline deadline);
	Result<VmRecord> start(const VmSpec &spec, Deadline deadline);
	// Waits (under the VM's lock, downgraded to shared) for a VM this call
	// started to answer; EINPROGRESS when the deadline passes first.
	Result<VmConnection> awaitBoot(const VmSpec &spec, VmRecord record, FileLock lock, FileLock slot,
				       Deadline deadline);
	Status startBroker(const VmRecord &vm);
	void markReady(const VmRecord &vm, Deadline deadline);
	Error stillStarting(const VmRecord &vm) const;
	// A fresh socket path for a serial VM (old ones of this stem removed).
	Result<std::string> serialSocketPath(const std::string &stem);
	// Starts a datastore VM's NBD servers (none for other VMs) and adds
	// their sockets to the request; the sockets are the caller's to close
	// once the helper has passed them on.
	Result<std::vector<UniqueFd>> startNbdServers(const VmSpec &spec, HelperRequest &request);
	// What the helper said on stderr while succeeding, as warnings.
	void passOnNotices();
	// Completes a started VM's record (its QEMU's start time) and puts it
	// in the map; a VM that cannot be recorded is stopped.
	Status recordStarted(VmRecord &record, Deadline deadline);
	// Kills the VM (verified) and drops its map entry.
	void retire(const VmRecord &vm, Deadline deadline);
	void showLog(const std::string &vmName);
	void removeSockets(const std::string &stem);
	void stopStrays(const std::string &vmName);
	void reportCorrupt(const std::optional<CorruptMap> &corrupt, Deadline deadline);

	ManagerContext ctx_;
	bool sweeping_ = false;
};

} // namespace fr::client
