// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/vm_manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <thread>

#include "client/channel_broker.h"
#include "client/encoding.h"
#include "client/process.h"
#include "client/ticket.h"
#include "client/vm_name.h"
#include "shared/display.h"
#include "shared/validate.h"

namespace fr::client {

namespace {

using std::chrono::milliseconds;

std::string randomHex(std::size_t bytes)
{
	std::string raw(bytes, '\0');
	randombytes_buf(raw.data(), raw.size());
	return hexEncode(raw);
}

Deadline earlier(Deadline a, Deadline b)
{
	return a < b ? a : b;
}

long long seconds(milliseconds ms)
{
	return static_cast<long long>((ms.count() + 999) / 1000);
}

} // namespace

Result<StateMap> VmManager::readMap(Deadline deadline)
{
	std::optional<CorruptMap> corrupt;
	Result<StateMap> map = ctx_.store->read(deadline, corrupt);
	reportCorrupt(corrupt, deadline);
	return map;
}

Status VmManager::updateMap(Deadline deadline, const StateStore::Change &change)
{
	std::optional<CorruptMap> corrupt;
	Status updated = ctx_.store->update(deadline, change, corrupt);
	reportCorrupt(corrupt, deadline);
	return updated;
}

void VmManager::reportCorrupt(const std::optional<CorruptMap> &corrupt, Deadline deadline)
{
	if (!corrupt)
		return;
	ctx_.warn("the state map could not be read (" + escapeForDisplay(corrupt->reason) +
		  "); kept it as " + escapeForDisplay(corrupt->keptAs) +
		  " and started a new one");
	// The VMs it listed may still run: without their tickets nobody can
	// talk to them, so they are stopped rather than leaked.
	stopOrphans(deadline);
}

std::string nbdLogName(const std::string &vmName)
{
	return vmFileStem(vmName) + ".nbd.log";
}

std::string VmManager::logTail(const std::string &vmName, std::size_t maxLines,
			       const std::string &fileName) const
{
	const std::string file = fileName.empty() ? vmFileStem(vmName) + ".log" : fileName;
	UniqueFd fd(::openat(ctx_.dir->fd.get(), file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
	if (!fd.isValid())
		return {};
	// The console log is small; its tail is what explains a failure.
	constexpr off_t kTailBytes = 64 << 10;
	struct stat st {};
	if (::fstat(fd.get(), &st) != 0)
		return {};
	const off_t from = st.st_size > kTailBytes ? st.st_size - kTailBytes : 0;
	std::string text(static_cast<std::size_t>(st.st_size - from), '\0');
	const ssize_t n = ::pread(fd.get(), text.data(), text.size(), from);
	text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
	std::vector<std::string> lines;
	std::size_t lineStart = 0;
	while (lineStart < text.size()) {
		std::size_t end = text.find('\n', lineStart);
		if (end == std::string::npos)
			end = text.size();
		std::string line = text.substr(lineStart, end - lineStart);
		if (!line.empty() && line.back() == '\r')
			line.pop_back();
		lines.push_back(escapeForDisplay(line));
		lineStart = end + 1;
	}
	std::string out;
	const std::size_t first = lines.size() > maxLines ? lines.size() - maxLines : 0;
	for (std::size_t i = first; i < lines.size(); ++i)
		out += "  | " + lines[i] + "\n";
	return out;
}

void VmManager::showLog(const std::string &vmName)
{
	if (!ctx_.verbose) {
		ctx_.warn("run with -v to see the VM's log");
		return;
	}
	const std::string tail = logTail(vmName, 60);
	ctx_.warn("the VM's log (" + ctx_.dir->path + "/" + vmFileStem(vmName) + ".log):\n" +
		  (tail.empty() ? std::string("  | (empty)\n") : tail));
}

void VmManager::retire(const VmRecord &vm, Deadline deadline)
{
	Status killed = terminateVerified(vm.pid, vm.startTime, vm.name, milliseconds(2000));
	if (!killed && killed.error().errnum() != EPERM)
		ctx_.warn("could not stop VM " + vm.name + ": " + killed.error().message());
	Status dropped = updateMap(deadline, [&](StateMap &map, bool &changed) {
		const VmRecord *current = map.find(vm.name);
		// Only the entry we judged: a newer one is someone else's VM.
		if (current != nullptr && current->pid == vm.pid && current->startTime == vm.startTime)
			changed = map.erase(vm.name);
		return Status{};
	});
	if (!dropped)
		ctx_.warn("could not update the state map: " + dropped.error().message());
}

Result<std::unique_ptr<VmSession>> VmManager::connect(const VmRecord &vm, Deadline deadline,
							  bool booting)
{
	std::optional<Error> last;
	int handshakeFailures = 0;
	for (;;) {
		Result<VerifiedProcess> process = verifyProcess(vm.pid, vm.startTime, vm.name);
		// Right after the helper answered, its child may not have exec'd
		// QEMU yet (same process, no marker): wait for it while booting.
		const bool waitingForExec =
			booting && process && process->state == ProcessState::Unmarked;
		if (process && process->state != ProcessState::Ours && !waitingForExec)
			return Error::invalid(EHOSTDOWN, "VM", vm.name, "%s",
					      booting ? "QEMU exited while the VM booted"
						      : "its QEMU is no longer running");
		Result<UniqueFd> fd = waitingForExec
					      ? Result<UniqueFd>(Error(EAGAIN, "exec", vm.name))
					      : ctx_.dialer->dial(vm);
		if (fd) {
			// Serial: our hello waits in the channel until the guest reads
			// its port, so one attempt may wait out the whole boot. vsock:
			// connect() fails until the daemon listens, then answers fast.
			// The same timeout then bounds each wait for the guest.
			Result<std::unique_ptr<VmSession>> session =
				ctx_.sessions->open(std::move(*fd), vm.ticket,
						    std::max(remaining(deadline), milliseconds(1)),
						    ctx_.ioTimeout);
			if (session)
				return session;
			last = session.error();
			// A wrong ticket is not going to get better; a disconnect during
			// the guest's start might.
			if (session.error().errnum() == EACCES || ++handshakeFailures >= 5)
				return session.error();
		} else {
			last = fd.error();
			// The broker of a serial VM is missing: only a repair helps.
			if (fd.error().errnum() == ENOTCONN)
				return fd.error();
		}
		if (Clock::now() >= deadline)
			break;
		std::this_thread::sleep_for(std::min(milliseconds(100), remaining(deadline)));
	}
	if (last)
		return Error::invalid(ETIMEDOUT, "VM", vm.name, "did not answer in time (%s)",
				      last->message().c_str());
	return Error::invalid(ETIMEDOUT, "VM", vm.name, "did not answer in time");
}

Error VmManager::stillStarting(const VmRecord &vm) const
{
	const std::int64_t booting = static_cast<std::int64_t>(std::time(nullptr)) - vm.startedAt;
	return Error::invalid(EINPROGRESS, "VM", vm.name,
			      "the restore VM is still starting (for %lld s); it keeps booting: run the "
			      "command again in a few seconds",
			      static_cast<long long>(std::max<std::int64_t>(0, booting)));
}

void VmManager::markReady(const VmRecord &vm, Deadline deadline)
{
	if (vm.ready)
		return;
	Status marked = updateMap(std::max(deadline, Clock::now() + std::chrono::seconds(5)),
				  [&](StateMap &map, bool &changed) {
					  const VmRecord *current = map.find(vm.name);
					  if (current != nullptr && current->pid == vm.pid &&
					      current->startTime == vm.startTime && !current->ready) {
						  VmRecord updated = *current;
						  updated.ready = true;
						  map.put(updated);
						  changed = true;
					  }
					  return Status{};
				  });
	if (!marked)
		ctx_.warn("could not update the state map: " + marked.error().message());
}

Result<std::unique_ptr<VmSession>> VmManager::useExisting(const VmRecord &vm, Deadline deadline)
{
	if (vm.ready)
		return connect(vm, earlier(deadline, Clock::now() + ctx_.reuseTimeout), false);
	// Booting (started by a call that gave up waiting): wait for it until
	// our deadline, or until its boot took too long.
	const auto bootEnd = Clock::now() +
			     std::chrono::seconds(std::max<std::int64_t>(
				     0, vm.startedAt + static_cast<std::int64_t>(
							       std::chrono::duration_cast<std::chrono::seconds>(ctx_.bootLimit)
								       .count()) -
					static_cast<std::int64_t>(std::time(nullptr))));
	Result<std::unique_ptr<VmSession>> session = connect(vm, earlier(deadline, bootEnd), true);
	if (session) {
		markReady(vm, deadline);
		return session;
	}
	if (session.error().errnum() == ETIMEDOUT && Clock::now() < bootEnd)
		return stillStarting(vm);
	return session;
}

Result<FileLock> VmManager::takeSlot(const std::string &vmName, Deadline deadline)
{
	const std::string stem = vmFileStem(vmName);
	auto pause = milliseconds(10);
	for (;;) {
		for (int i = 0; i < kMaxRequests; ++i) {
			Result<std::optional<FileLock>> slot =
				FileLock::tryAcquire(ctx_.dir->fd.get(), stem + ".slot" + std::to_string(i));
			if (!slot)
				return slot.error();
			if (*slot)
				return std::move(**slot);
		}
		if (Clock::now() >= deadline)
			return Error::invalid(EBUSY, "VM", vmName,
					      "busy: %d requests are running on it; try again when one has "
					      "finished (or wait longer with --timeout)",
					      kMaxRequests);
		std::this_thread::sleep_for(std::min(pause, remaining(deadline)));
		pause = std::min(pause * 2, milliseconds(200));
	}
}

Status VmManager::startBroker(const VmRecord &vm)
{
	if (vm.transport != Transport::Serial)
		return {};
	// The broker stops waiting for QEMU's socket when this QEMU exits
	// (a QEMU that died at once must not leave callers waiting on the
	// broker's queue). Its pidfd pins the process; the start time proves
	// it is still the QEMU of the record.
	UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, vm.pid, 0)));
	Result<std::uint64_t> started = readStartTime(vm.pid);
	if (!pidfd.isValid() || !started || *started != vm.startTime)
		pidfd.reset();
	return startChannelBroker(vm.socketPath, channelSocketPath(vm.socketPath), ctx_.brokerConnect, pidfd.get());
}

Result<VmConnection> VmManager::acquire(const VmSpec &spec, Deadline deadline)
{
	const std::string stem = vmFileStem(spec.name);
	Result<FileLock> slot = takeSlot(spec.name, deadline);
	if (!slot)
		return slot.error();
	// The common case: the VM runs; use it beside whoever else does.
	Result<FileLock> shared = FileLock::acquire(ctx_.dir->fd.get(), stem + ".lock", deadline, "VM lock",
						    FileLock::Mode::Shared);
	if (!shared) {
		if (shared.error().errnum() != ETIMEDOUT)
			return shared.error();
		// Held exclusively past our deadline: being started (or stopped).
		return Error::invalid(EINPROGRESS, "VM", spec.name,
				      "the restore VM is still starting; it keeps booting: run the command "
				      "again in a few seconds");
	}
	Result<StateMap> map = readMap(deadline);
	if (!map)
		return map.error();
	if (const VmRecord *found = map->find(spec.name); found != nullptr && found->archives == spec.archives) {
		const VmRecord existing = *found;
		Result<std::unique_ptr<VmSession>> session = useExisting(existing, deadline);
		if (session)
			return VmConnection(std::move(*shared), std::move(*slot), existing, std::move(*session), false);
		if (session.error().errnum() == EINPROGRESS)
			return session.error();
	}

	// Start, replace or repair it: alone.
	shared->release();
	Result<FileLock> lock = FileLock::acquire(ctx_.dir->fd.get(), stem + ".lock", deadline, "VM lock");
	if (!lock) {
		if (lock.error().errnum() != ETIMEDOUT)
			return lock.error();
		return Error::invalid(ETIMEDOUT, "VM", spec.name,
				      "busy: other file-restore calls kept it past --timeout");
	}
	map = readMap(deadline);
	if (!map)
		return map.error();
	if (const VmRecord *found = map->find(spec.name)) {
		const VmRecord existing = *found;
		if (existing.archives != spec.archives) {
			// Same name, other disks (an --image name collision, or a
			// snapshot changed behind our back): its disk indices would
			// map wrongly, so it is replaced.
			ctx_.warn("VM " + spec.name + " serves other disk images; restarting it");
			retire(existing, deadline);
		} else {
			Result<std::unique_ptr<VmSession>> session = useExisting(existing, deadline);
			if (!session && session.error().errnum() == ENOTCONN) {
				// Its channel broker is gone (killed): a new one, then again.
				if (Status ok = startBroker(existing); !ok)
					ctx_.warn("could not start the channel broker of VM " + spec.name + ": " +
						  ok.error().message());
				session = useExisting(existing, deadline);
			}
			if (session) {
				if (Status ok = lock->downgrade(); !ok)
					return ok.error();
				return VmConnection(std::move(*lock), std::move(*slot), existing, std::move(*session),
						    false);
			}
			if (session.error().errnum() == EINPROGRESS)
				return session.error();
			if (session.error().errnum() != EHOSTDOWN)
				ctx_.warn("VM " + spec.name + " did not answer (" + session.error().message() +
					  "); starting a new one");
			retire(existing, deadline);
		}
	}
	Result<VmRecord> fresh = start(spec, deadline);
	if (!fresh)
		return fresh.error();
	return awaitBoot(spec, std::move(*fresh), std::move(*lock), std::move(*slot), deadline);
}

Result<VmConnection> VmManager::awaitBoot(const VmSpec &spec, VmRecord record, FileLock lock, FileLock slot,
					  Deadline deadline)
{
	// The boot is waited for under the shared lock: calls that come
	// meanwhile wait for the same boot instead of for this call.
	if (Status ok = lock.downgrade(); !ok)
		return ok.error();
	const auto bootStart = Clock::now();
	Result<std::unique_ptr<VmSession>> session = connect(record, deadline, true);
	if (!session) {
		if (session.error().errnum() == ETIMEDOUT) {
			// Left booting: the next call finds it (proxmox-file-restore's
			// callers poll on this answer).
			return stillStarting(record);
		}
		ctx_.warn("VM " + spec.name + " did not come up within " +
			  std::to_string(seconds(std::chrono::duration_cast<milliseconds>(Clock::now() - bootStart))) +
			  " s");
		showLog(spec.name);
		retire(record, deadline);
		return session.error();
	}
	markReady(record, deadline);
	record.ready = true;
	return VmConnection(std::move(lock), std::move(slot), std::move(record), std::move(*session), true);
}

Result<VmLease> VmManager::lease(const VmConnection &held, Deadline deadline)
{
	Result<FileLock> slot = takeSlot(held.record().name, deadline);
	if (!slot)
		return slot.error();
	Result<std::unique_ptr<VmSession>> session =
		connect(held.record(), earlier(deadline, Clock::now() + ctx_.reuseTimeout), false);
	if (!session)
		return session.error();
	return VmLease(std::move(*slot), std::move(*session));
}

Result<std::string> VmManager::serialSocketPath(const std::string &stem)
{
	removeSockets(stem);
	// A fresh path per start: no earlier QEMU can unlink or hold it.
	std::string path = ctx_.dir->path + "/" + stem + "-" + randomHex(4) + ".sock";
	// The helper passes the path on to QEMU's command line only as an
	// allow-listed string; say so here rather than as its refusal.
	Status safe = checkAbsolutePath(path, kSafePathChars, "socket");
	if (!safe)
		return Error::invalid(EINVAL, "runtime directory", escapeForDisplay(ctx_.dir->path),
				      "the serial transport needs a path of [A-Za-z0-9/_.+@-] "
				      "only; set XDG_RUNTIME_DIR to one");
	// The broker's socket beside it (".sock" -> ".chan") must fit too.
	Result<sockaddr_un> fits = unixAddress(channelSocketPath(path));
	if (!fits)
		return Error::invalid(ENAMETOOLONG, "runtime directory", escapeForDisplay(ctx_.dir->path),
				      "too long for a unix socket path");
	return path;
}

Result<std::vector<UniqueFd>> VmManager::startNbdServers(const VmSpec &spec, HelperRequest &request)
{
	if (!spec.startNbdServers)
		return std::vector<UniqueFd>{};
	const std::string nbdLog = nbdLogName(spec.name);
	UniqueFd nbdLogFd(::openat(ctx_.dir->fd.get(), nbdLog.c_str(),
				   O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
	if (!nbdLogFd.isValid())
		return Error(errno, "open", ctx_.dir->path + "/" + nbdLog);
	Result<std::vector<UniqueFd>> sockets = spec.startNbdServers(nbdLogFd.get());
	if (!sockets) {
		ctx_.warn("the NBD servers' log (" + ctx_.dir->path + "/" + nbdLog + "):\n" +
			  logTail(spec.name, 20, nbdLog));
		return sockets.error();
	}
	for (const UniqueFd &socket : *sockets)
		request.nbdFds.push_back(socket.get());
	return sockets;
}

void VmManager::passOnNotices()
{
	for (std::string notes = ctx_.helper->notices(); !notes.empty();) {
		const std::size_t end = notes.find('\n');
		const std::string line = notes.substr(0, end);
		if (!line.empty())
			ctx_.warn(escapeForDisplay(line));
		notes = end == std::string::npos ? std::string() : notes.substr(end + 1);
	}
}

namespace {

HelperRequest helperRequest(const VmSpec &spec, bool vhostVsockUsable)
{
	HelperRequest request;
	request.name = spec.name;
	request.transport = resolveTransport(spec.transport, vhostVsockUsable);
	request.memoryMib = spec.memoryMib;
	request.idleTimeout = spec.idleTimeout;
	request.images = spec.archives;
	return request;
}

// The state map's record of a VM the helper just started (all but its
// process start time).
VmRecord startedRecord(const VmSpec &spec, const HelperRequest &request, const HelperOutput &started,
		       const std::string &ticket)
{
	VmRecord record;
	record.name = spec.name;
	record.pid = started.pid;
	record.transport = request.transport;
	record.cid = started.cid;
	record.socketPath = request.socketPath;
	record.ticket = ticket;
	record.startedAt = static_cast<std::int64_t>(std::time(nullptr));
	record.idleTimeout = spec.idleTimeout.value_or(0);
	record.memory = spec.memoryMib;
	record.archives = spec.archives;
	record.ready = false;
	record.datastore = spec.datastore;
	record.snapshot = spec.snapshot;
	return record;
}

} // namespace

Status VmManager::recordStarted(VmRecord &record, Deadline deadline)
{
	Result<std::uint64_t> startTime = readStartTime(record.pid);
	if (!startTime) {
		showLog(record.name);
		return Error::invalid(EHOSTDOWN, "VM", record.name, "QEMU (pid %d) exited right away",
				      static_cast<int>(record.pid));
	}
	record.startTime = *startTime;
	// Recorded before the boot, so that a call killed meanwhile leaves an
	// entry the next call can reuse or clean up.
	Status recorded = updateMap(deadline, [&](StateMap &map, bool &changed) {
		map.put(record);
		changed = true;
		return Status{};
	});
	if (!recorded)
		(void)terminateVerified(record.pid, record.startTime, record.name, milliseconds(2000));
	return recorded;
}

Result<VmRecord> VmManager::start(const VmSpec &spec, Deadline deadline)
{
	const std::string stem = vmFileStem(spec.name);
	const int dirFd = ctx_.dir->fd.get();
	HelperRequest request = helperRequest(spec, ctx_.vhostVsockUsable);
	// A QEMU of this name that the map does not list (a corrupt map, a call
	// killed between the helper's answer and the map update) would still
	// hold the name, and unlink its socket path when it dies: stop it. We
	// hold the VM's lock, so no other call is using it.
	stopStrays(spec.name);
	if (request.transport == Transport::Serial) {
		Result<std::string> socket = serialSocketPath(stem);
		if (!socket)
			return socket.error();
		request.socketPath = std::move(*socket);
	}
	const std::string logName = stem + ".log";
	UniqueFd logFd(::openat(dirFd, logName.c_str(),
				O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
	if (!logFd.isValid())
		return Error(errno, "open", ctx_.dir->path + "/" + logName);

	if (ctx_.note)
		ctx_.note("starting restore VM\u2026");
	// A PBS datastore's disks: their NBD servers start first, so that a
	// server that cannot start is an error before any VM exists. The
	// sockets are QEMU's once the helper has passed them on; ours close
	// at the end of this function.
	Result<std::vector<UniqueFd>> nbdSockets = startNbdServers(spec, request);
	if (!nbdSockets)
		return nbdSockets.error();

	const std::string ticket = newTicketHex();
	Result<HelperOutput> started = ctx_.helper->start(request, ticket, logFd.get(), deadline);
	passOnNotices();
	if (!started) {
		if (started.error().errnum() == EIO)
			showLog(spec.name);
		return started.error();
	}
	logFd.reset();

	VmRecord record = startedRecord(spec, request, *started, ticket);
	if (Status ok = recordStarted(record, deadline); !ok)
		return ok.error();
	if (Status ok = startBroker(record); !ok) {
		retire(record, deadline);
		return ok.error();
	}
	return record;
}

Result<StopOutcome> VmManager::stop(const std::string &name, Deadline deadline)
{
	Result<StateMap> map = readMap(deadline);
	if (!map)
		return map.error();
	const VmRecord *found = map->find(name);
	if (found == nullptr)
		return Error::invalid(ENOENT, "stop", escapeForDisplay(name),
				      "no such VM; 'file-restore status' lists the running ones");
	const VmRecord vm = *found;
	StopOutcome outcome = StopOutcome::PoweredOff;
	Result<VerifiedProcess> process = verifyProcess(vm.pid, vm.startTime, vm.name);
	if (!process || process->state != ProcessState::Ours) {
		outcome = StopOutcome::NotRunning;
	} else {
		// Calls using the VM hold its lock shared for their whole request;
		// `stop` does not wait for a long extract (or a mount) but kills
		// the VM instead.
		Result<FileLock> lock = FileLock::acquire(ctx_.dir->fd.get(), vmFileStem(name) + ".lock",
							  earlier(deadline, Clock::now() + ctx_.stopGrace),
							  "VM lock");
		if (lock) {
			Result<std::unique_ptr<VmSession>> session =
				connect(vm, earlier(deadline, Clock::now() + ctx_.stopGrace), false);
			if (session)
				(void)(*session)->stop();
			if (!session || !waitForExit(process->pidfd.get(), ctx_.stopGrace)) {
				ctx_.warn("VM " + name + " did not power off; killing it");
				outcome = StopOutcome::Killed;
			}
		} else {
			ctx_.warn("VM " + name + " is in use by another file-restore call; killing it");
			outcome = StopOutcome::KilledInUse;
		}
		Status killed = terminateVerified(vm.pid, vm.startTime, vm.name, milliseconds(2000));
		if (!killed && killed.error().errnum() != EPERM)
			return killed.error();
		if (lock)
			removeSockets(vmFileStem(name));
	}
	Status dropped = updateMap(deadline, [&](StateMap &current, bool &changed) {
		const VmRecord *entry = current.find(name);
		if (entry != nullptr && entry->pid == vm.pid && entry->startTime == vm.startTime)
			changed = current.erase(name);
		return Status{};
	});
	if (!dropped)
		return dropped.error();
	return outcome;
}

Result<std::vector<std::string>> VmManager::names(Deadline deadline)
{
	Result<StateMap> map = readMap(deadline);
	if (!map)
		return map.error();
	std::vector<std::string> out;
	for (const VmRecord &vm : map->vms)
		out.push_back(vm.name);
	return out;
}

Result<std::vector<VmStatusRow>> VmManager::status(Deadline deadline)
{
	stopOrphans(deadline);
	Result<StateMap> map = readMap(deadline);
	if (!map)
		return map.error();
	std::vector<VmStatusRow> rows;
	for (const VmRecord &vm : map->vms) {
		VmStatusRow row{vm, "running", std::nullopt, {}};
		Result<VerifiedProcess> process = verifyProcess(vm.pid, vm.startTime, vm.name);
		if (!process)
			return process.error();
		if (process->state != ProcessState::Ours) {
			// Powered off after its idle timeout (or killed): forget it.
			retire(vm, deadline);
			continue;
		}
		// Shared: beside the calls that use it; refused only while a call
		// starts, repairs or stops it.
		Result<std::optional<FileLock>> lock = FileLock::tryAcquire(
			ctx_.dir->fd.get(), vmFileStem(vm.name) + ".lock", FileLock::Mode::Shared);
		if (!lock)
			return lock.error();
		if (!*lock) {
			row.state = "starting";
			rows.push_back(std::move(row));
			continue;
		}
		const bool booting = !vm.ready;
		Result<std::unique_ptr<VmSession>> session =
			connect(vm, earlier(deadline, Clock::now() + (booting ? milliseconds(500) : ctx_.reuseTimeout)),
				booting);
		Result<GuestStatus> guest = session ? (*session)->status(true)
						    : Result<GuestStatus>(session.error());
		if (guest) {
			row.guest = std::move(*guest);
			markReady(vm, deadline);
		} else if (booting && static_cast<std::int64_t>(std::time(nullptr)) - vm.startedAt <
					      std::chrono::duration_cast<std::chrono::seconds>(ctx_.bootLimit).count()) {
			row.state = "starting";
		} else if (guest.error().errnum() == ENOTCONN) {
			row.problem = guest.error().message(); // its broker is gone: the next call repairs it
		} else {
			row.state = "stopped";
			row.problem = guest.error().message();
			lock->reset();
			retire(vm, deadline);
		}
		rows.push_back(std::move(row));
	}
	return rows;
}

void VmManager::removeSockets(const std::string &stem)
{
	// "<stem>-<random>.sock" of earlier VMs of this name (their lock is
	// ours, their QEMU gone); only sockets, in our own directory.
	UniqueFd scan(::openat(ctx_.dir->fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	DIR *dir = scan.isValid() ? ::fdopendir(scan.release()) : nullptr;
	if (dir == nullptr)
		return;
	std::vector<std::string> stale;
	while (const dirent *entry = ::readdir(dir)) {
		const std::string_view name(entry->d_name);
		if (name.starts_with(stem + "-") && (name.ends_with(".sock") || name.ends_with(".chan")))
			stale.emplace_back(name);
	}
	::closedir(dir);
	for (const std::string &name : stale) {
		struct stat st {};
		if (::fstatat(ctx_.dir->fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISSOCK(st.st_mode))
			::unlinkat(ctx_.dir->fd.get(), name.c_str(), 0);
	}
}

void VmManager::stopStrays(const std::string &vmName)
{
	const std::string ourDir = ctx_.dir->path + "/";
	for (const QemuProcess &qemu : findOurQemus()) {
		if (qemu.vmName != vmName || !fdTarget(qemu.pid, 1).starts_with(ourDir))
			continue;
		Result<std::uint64_t> startTime = readStartTime(qemu.pid);
		if (startTime &&
		    terminateVerified(qemu.pid, *startTime, qemu.vmName, milliseconds(2000)))
			ctx_.warn("stopped an earlier QEMU of VM " + vmName + " (pid " +
				  std::to_string(qemu.pid) + ") that the state map did not list");
	}
}

void VmManager::stopOrphans(Deadline deadline)
{
	// Recursion guard: reading the map below may itself find it corrupt.
	if (sweeping_)
		return;
	sweeping_ = true;
	const std::string ourDir = ctx_.dir->path + "/";
	for (const QemuProcess &qemu : findOurQemus()) {
		// Only QEMUs whose console log is in OUR runtime directory: the same
		// user may run other clients with another XDG_RUNTIME_DIR.
		const std::string log = fdTarget(qemu.pid, 1);
		if (log.compare(0, ourDir.size(), ourDir) != 0)
			continue;
		if (!checkVmName(qemu.vmName, "name"))
			continue;
		Result<std::optional<FileLock>> lock =
			FileLock::tryAcquire(ctx_.dir->fd.get(), vmFileStem(qemu.vmName) + ".lock");
		if (!lock || !*lock)
			continue; // in use: a call is starting it right now
		Result<StateMap> map = readMap(deadline);
		if (!map)
			break;
		const VmRecord *listed = map->find(qemu.vmName);
		if (listed != nullptr && listed->pid == qemu.pid)
			continue;
		Result<std::uint64_t> startTime = readStartTime(qemu.pid);
		if (!startTime)
			continue;
		if (terminateVerified(qemu.pid, *startTime, qemu.vmName, milliseconds(2000)))
			ctx_.warn("stopped VM " + qemu.vmName + " (pid " + std::to_string(qemu.pid) +
				  "): the state map does not list it, so nothing can talk to it");
	}
	sweeping_ = false;
}

} // namespace fr::client
