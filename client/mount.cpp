// SPDX-License-Identifier: AGPL-3.0-or-later
#define FUSE_USE_VERSION 312
#include "client/mount.h"

#include <fuse.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "client/mount_fs.h"
#include "client/output.h"
#include "client/process.h"
#include "shared/display.h"
#include "shared/unique_fd.h"

extern char **environ;

namespace fr::client {

namespace {

using std::chrono::milliseconds;

// Sessions for the mount's threads: the first from the call's own
// connection, more (up to `max`) leased from the manager as reads overlap.
class VmSessionPool final : public SessionPool {
public:
	VmSessionPool(VmManager &vms, VmConnection &first, int max) : vms_(vms), first_(first), max_(max)
	{
		entries_.push_back(Entry{&first.session(), nullptr, false});
	}

	Status with(const Use &use) override
	{
		Result<std::size_t> taken = take();
		if (!taken)
			return taken.error();
		VmSession *session = entries_[*taken].session;
		Status result = use(*session);
		giveBack(*taken, result);
		return result;
	}

	void markGone()
	{
		{
			std::lock_guard lock(mutex_);
			gone_ = true;
		}
		changed_.notify_all();
	}
	bool gone()
	{
		std::lock_guard lock(mutex_);
		return gone_;
	}

private:
	struct Entry {
		VmSession *session;
		std::unique_ptr<VmLease> lease; // null for the first
		bool busy;
	};

	static Error goneError() { return Error::invalid(EHOSTDOWN, "VM", "mount", "the restore VM is gone"); }

	Result<std::size_t> take()
	{
		std::unique_lock lock(mutex_);
		for (;;) {
			if (gone_)
				return goneError();
			for (std::size_t i = 0; i < entries_.size(); ++i)
				if (entries_[i].session != nullptr && !entries_[i].busy) {
					entries_[i].busy = true;
					return i;
				}
			if (live() < max_ && !creating_) {
				creating_ = true;
				lock.unlock();
				// VmManager is not thread-safe: one lease at a time.
				Result<VmLease> lease = vms_.lease(first_, Clock::now() + std::chrono::seconds(15));
				lock.lock();
				creating_ = false;
				changed_.notify_all();
				if (lease) {
					auto owned = std::make_unique<VmLease>(std::move(*lease));
					VmSession *session = &owned->session();
					entries_.push_back(Entry{session, std::move(owned), true});
					return entries_.size() - 1;
				}
				if (lease.error().errnum() == EHOSTDOWN)
					gone_ = true;
				if (live() == 0)
					return lease.error();
				// Else: wait for one of ours (the VM's slots may be taken).
			}
			changed_.wait_for(lock, milliseconds(500));
		}
	}

	void giveBack(std::size_t index, const Status &result)
	{
		{
			std::lock_guard lock(mutex_);
			Entry &entry = entries_[index];
			entry.busy = false;
			// A session that failed other than with the guest's answer is
			// unusable (shared/guest_session.h): the next use gets another.
			if (!result && result.error().kind() != ErrorKind::Guest) {
				entry.session = nullptr;
				entry.lease.reset();
			}
		}
		changed_.notify_all();
	}

	int live() const
	{
		return static_cast<int>(std::count_if(entries_.begin(), entries_.end(),
						      [](const Entry &e) { return e.session != nullptr; }));
	}

	VmManager &vms_;
	VmConnection &first_;
	int max_;
	std::mutex mutex_;
	std::condition_variable changed_;
	std::vector<Entry> entries_;
	bool creating_ = false;
	bool gone_ = false;
};

// What the FUSE callbacks reach through fuse_get_context()->private_data.
struct Mounted {
	std::unique_ptr<MountFs> fs;
};

MountFs &fs()
{
	return *static_cast<Mounted *>(fuse_get_context()->private_data)->fs;
}

void *opInit(fuse_conn_info *, fuse_config *cfg)
{
	// A backup does not change: keep what the kernel learnt.
	cfg->kernel_cache = 1;
	cfg->attr_timeout = 3600;
	cfg->entry_timeout = 3600;
	cfg->negative_timeout = 60;
	cfg->use_ino = 0;
	return fuse_get_context()->private_data;
}

int opGetattr(const char *path, struct stat *st, fuse_file_info *)
{
	return fs().getattr(path, *st);
}

int opReadlink(const char *path, char *buf, size_t size)
{
	std::string target;
	const int rc = fs().readlink(path, target);
	if (rc != 0)
		return rc;
	if (size == 0)
		return -EINVAL;
	const std::size_t n = std::min(target.size(), size - 1);
	std::memcpy(buf, target.data(), n);
	buf[n] = '\0';
	return 0;
}

int opOpendir(const char *, fuse_file_info *fi)
{
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	return 0;
}

int opReaddir(const char *path, void *buf, fuse_fill_dir_t filler, off_t, fuse_file_info *,
	      fuse_readdir_flags flags)
{
	const auto plus = (flags & FUSE_READDIR_PLUS) != 0 ? FUSE_FILL_DIR_PLUS : static_cast<fuse_fill_dir_flags>(0);
	filler(buf, ".", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
	filler(buf, "..", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
	return fs().readdir(path, [&](const std::string &name, const struct stat &st) {
		return filler(buf, name.c_str(), &st, 0, plus) == 0;
	});
}

int opOpen(const char *path, fuse_file_info *fi)
{
	const int rc = fs().open(path, fi->flags);
	if (rc == 0)
		fi->keep_cache = 1;
	return rc;
}

int opRead(const char *path, char *buf, size_t size, off_t offset, fuse_file_info *)
{
	return fs().read(path, buf, size, offset);
}

int opListxattr(const char *path, char *list, size_t size)
{
	return fs().listxattr(path, list, size);
}

int opGetxattr(const char *path, const char *name, char *value, size_t size)
{
	return fs().getxattr(path, name, value, size);
}

int opStatfs(const char *, struct statvfs *st)
{
	std::memset(st, 0, sizeof(*st));
	st->f_bsize = 4096;
	st->f_frsize = 4096;
	st->f_namemax = 255;
	st->f_flag = ST_RDONLY;
	return 0;
}

fuse_operations operations()
{
	fuse_operations ops{};
	ops.init = opInit;
	ops.getattr = opGetattr;
	ops.readlink = opReadlink;
	ops.opendir = opOpendir;
	ops.readdir = opReaddir;
	ops.open = opOpen;
	ops.read = opRead;
	ops.listxattr = opListxattr;
	ops.getxattr = opGetxattr;
	ops.statfs = opStatfs;
	return ops;
}

// Keeps the VM alive (its idle timer runs while nothing reads) and notices
// when it dies: then every operation answers EIO, and the VM's locks are
// let go (nothing waits for a VM that is gone).
class Keeper {
public:
	Keeper(VmConnection &vm, VmSessionPool &pool, MountFs &fs) : vm_(vm), pool_(pool), fs_(fs)
	{
		const std::uint32_t idle = vm.record().idleTimeout != 0 ? vm.record().idleTimeout : 600;
		interval_ = std::chrono::seconds(std::clamp<std::uint32_t>(idle / 3, 1, 60));
		thread_ = std::thread([this] { loop(); });
	}
	~Keeper()
	{
		{
			std::lock_guard lock(mutex_);
			stop_ = true;
		}
		wake_.notify_all();
		thread_.join();
	}

private:
	void loop()
	{
		auto lastPing = Clock::now();
		std::unique_lock lock(mutex_);
		while (!stop_) {
			wake_.wait_for(lock, std::chrono::seconds(1));
			// cppcheck-suppress knownConditionTrueFalse ; stop() sets it while we wait
			if (stop_ || !fs_.alive())
				continue;
			lock.unlock();
			const VmRecord &r = vm_.record();
			Result<VerifiedProcess> process = verifyProcess(r.pid, r.startTime, r.name);
			bool gone = process && process->state != ProcessState::Ours;
			if (!gone && Clock::now() - lastPing >= interval_) {
				lastPing = Clock::now();
				Status pinged = pool_.with([](VmSession &session) -> Status {
					Result<GuestStatus> status = session.status(false);
					return status ? Status{} : Status(status.error());
				});
				gone = !pinged && pinged.error().errnum() == EHOSTDOWN;
			}
			if (gone) {
				fs_.vmGone();
				pool_.markGone();
				vm_.releaseLocks();
			}
			lock.lock();
		}
	}

	VmConnection &vm_;
	VmSessionPool &pool_;
	MountFs &fs_;
	std::chrono::seconds interval_{60};
	std::mutex mutex_;
	std::condition_variable wake_;
	bool stop_ = false;
	std::thread thread_;
};

struct FuseArgs {
	fuse_args args = FUSE_ARGS_INIT(0, nullptr);
	~FuseArgs() { fuse_opt_free_args(&args); }
};

} // namespace

Result<int> runMount(VmManager &vms, const VmSpec &spec, const GuestTarget &target, Deadline deadline,
		     const MountOptions &options)
{
	if (target.isRoot)
		return Error::invalid(EINVAL, "mount", "/",
				      "mount needs a directory inside an archive, e.g. /<archive>/part/1")
			.withKind(ErrorKind::Usage);
	struct stat st {};
	if (::stat(options.mountpoint.c_str(), &st) != 0)
		return Error::invalid(errno, "mount", escapeForDisplay(options.mountpoint),
				      "%s (the mountpoint must be an existing directory)", std::strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return Error::invalid(ENOTDIR, "mount", escapeForDisplay(options.mountpoint),
				      "not a directory (the mountpoint must be an existing directory)")
			.withKind(ErrorKind::Usage);
	if (::access("/dev/fuse", R_OK | W_OK) != 0)
		return Error::invalid(ENODEV, "mount", "/dev/fuse",
				      "not usable here (FUSE needs the fuse kernel module and /dev/fuse)");

	Result<VmConnection> vm = vms.acquire(spec, deadline);
	if (!vm)
		return vm.error();
	if (options.beforeLookup)
		if (Status ok = options.beforeLookup(*vm); !ok)
			return ok.error();
	Result<GuestEntry> root = vm->session().stat(target.guestPath);
	if (!root)
		return forUser(Status(root.error()), "mount", target).error();
	if (root->type != EntryType::Directory && root->type != EntryType::Virtual)
		return Error::invalid(ENOTDIR, "mount", escapeForDisplay(target.userPath),
				      "not a directory: only directories can be mounted (extract a file instead)")
			.withKind(ErrorKind::Usage);

	FuseArgs args;
	fuse_opt_add_arg(&args.args, "file-restore");
	// auto_unmount: if this process dies, fusermount3 unmounts.
	fuse_opt_add_arg(&args.args, "-o");
	fuse_opt_add_arg(&args.args, "ro,fsname=file-restore,subtype=file-restore,auto_unmount");
	for (const std::string &option : options.fuseOptions) {
		fuse_opt_add_arg(&args.args, "-o");
		fuse_opt_add_arg(&args.args, option.c_str());
	}
	const fuse_operations ops = operations();
	Mounted mounted;
	fuse *f = fuse_new(&args.args, &ops, sizeof(ops), &mounted);
	if (f == nullptr)
		return Error::invalid(EINVAL, "mount", "options", "libfuse refused them (see above)")
			.withKind(ErrorKind::Usage);
	if (fuse_mount(f, options.mountpoint.c_str()) != 0) {
		fuse_destroy(f);
		return Error::invalid(EIO, "mount", escapeForDisplay(options.mountpoint),
				      "FUSE could not mount it (the message above says why; it needs "
				      "fusermount3 from Debian's fuse3, and a mountpoint you own)");
	}
	// From here the mount exists. In the background, the calling process
	// returns now (0) and a daemon serves it; threads start after the fork.
	if (fuse_daemonize(options.foreground ? 1 : 0) != 0) {
		fuse_unmount(f);
		fuse_destroy(f);
		return Error(errno, "fuse_daemonize", "mount");
	}
	MountFsOptions fsOptions;
	fsOptions.uid = ::getuid();
	fsOptions.gid = ::getgid();
	VmSessionPool pool(vms, *vm, std::max(1, options.sessions));
	mounted.fs = std::make_unique<MountFs>(pool, target.guestPath, fsOptions);
	int rc = 0;
	{
		Keeper keeper(*vm, pool, *mounted.fs);
		// libfuse installs its handlers only over the default ones.
		for (int sig : {SIGINT, SIGTERM, SIGHUP})
			(void)::signal(sig, SIG_DFL);
		fuse_session *session = fuse_get_session(f);
		fuse_set_signal_handlers(session);
		fuse_loop_config *config = fuse_loop_cfg_create();
		fuse_loop_cfg_set_max_threads(config, 8);
		rc = fuse_loop_mt(f, config);
		fuse_loop_cfg_destroy(config);
		fuse_remove_signal_handlers(session);
		fuse_unmount(f);
	}
	mounted.fs.reset();
	fuse_destroy(f);
	return rc == 0 ? 0 : 1;
}

Status unmount(const std::string &mountpoint)
{
	const char *binary = ::access("/usr/bin/fusermount3", X_OK) == 0 ? "/usr/bin/fusermount3" : "fusermount3";
	int err[2];
	if (::pipe2(err, O_CLOEXEC) != 0)
		return Error(errno, "pipe", "fusermount3");
	UniqueFd errRead(err[0]);
	UniqueFd errWrite(err[1]);
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, errWrite.get(), 2);
	const char *argv[] = {"fusermount3", "-u", "--", mountpoint.c_str(), nullptr};
	pid_t pid = -1;
	const int rc = ::posix_spawnp(&pid, binary, &actions, nullptr, const_cast<char **>(argv), environ);
	posix_spawn_file_actions_destroy(&actions);
	errWrite.reset();
	if (rc != 0)
		return Error::invalid(rc, "umount", escapeForDisplay(mountpoint),
				      "cannot run fusermount3 (%s; Debian's fuse3 has it)", std::strerror(rc));
	std::string message;
	char buf[512];
	ssize_t n;
	while ((n = ::read(errRead.get(), buf, sizeof(buf))) > 0 && message.size() < 4096)
		message.append(buf, static_cast<std::size_t>(n));
	int status = 0;
	while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return {};
	while (!message.empty() && (message.back() == '\n' || message.back() == '\r'))
		message.pop_back();
	return Error::invalid(EINVAL, "umount", escapeForDisplay(mountpoint), "%s",
			      message.empty() ? "fusermount3 failed" : escapeForDisplay(message).c_str());
}

} // namespace fr::client
