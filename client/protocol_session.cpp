// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/protocol_session.h"

#include <cerrno>

#include "client/guest_path.h"
#include "shared/byte_stream.h"
#include "shared/guest_session.h"
#include "shared/protocol.h"

namespace fr::client {

namespace {

using std::chrono::milliseconds;

int clampMs(milliseconds ms)
{
	return static_cast<int>(std::min<long long>(std::max<long long>(ms.count(), 1), INT32_MAX));
}

// FdStream with an extra deadline for the handshake: fr::GuestSession has
// one timeout for the handshake and every later wait; a booting VM gets the
// call's remaining time, a request gets --timeout-independent io time.
class DeadlineStream final : public ByteStream {
public:
	explicit DeadlineStream(UniqueFd fd) : inner_(std::move(fd)) {}

	void setDeadline(std::optional<Clock::time_point> deadline) { deadline_ = deadline; }

	Result<std::size_t> read(std::span<std::uint8_t> buf, int timeoutMs) override
	{
		return inner_.read(buf, cap(timeoutMs));
	}
	Status write(std::span<const std::uint8_t> buf, int timeoutMs) override
	{
		return inner_.write(buf, cap(timeoutMs));
	}

private:
	int cap(int timeoutMs) const
	{
		if (!deadline_)
			return timeoutMs;
		const int left = clampMs(std::chrono::duration_cast<milliseconds>(*deadline_ - Clock::now()));
		return timeoutMs < 0 ? left : std::min(timeoutMs, left);
	}

	FdStream inner_;
	std::optional<Clock::time_point> deadline_;
};

EntryType entryType(proto::EntryType type)
{
	switch (type) {
	case proto::EntryType::File:
		return EntryType::File;
	case proto::EntryType::Directory:
		return EntryType::Directory;
	case proto::EntryType::Symlink:
		return EntryType::Symlink;
	case proto::EntryType::BlockDevice:
		return EntryType::BlockDevice;
	case proto::EntryType::CharDevice:
		return EntryType::CharDevice;
	case proto::EntryType::Fifo:
		return EntryType::Fifo;
	case proto::EntryType::Socket:
		return EntryType::Socket;
	}
	return EntryType::File;
}

GuestEntry toEntry(const proto::Entry &entry, bool isVirtual)
{
	GuestEntry out;
	out.name = entry.name;
	out.type = isVirtual ? EntryType::Virtual : entryType(entry.type);
	out.size = entry.size;
	out.mode = entry.mode;
	out.mtime = entry.mtimeSec;
	out.linkTarget = entry.linkTarget;
	return out;
}

// "/disk<N>" and "/disk<N>/part" list the virtual levels of the hierarchy
// (buckets, partitions): shown as type 'v', as proxmox-file-restore does.
bool listsVirtualLevel(std::string_view guestPath)
{
	Result<std::vector<std::string>> components = splitUserPath(guestPath);
	if (!components)
		return false;
	return components->size() == 1 || (components->size() == 2 && (*components)[1] == "part");
}

class ProtocolSession final : public VmSession {
public:
	explicit ProtocolSession(fr::GuestSession session) : session_(std::move(session)) {}

	Result<GuestStatus> status(bool keepTimeout) override
	{
		Result<proto::StatusInfo> info = session_.status(keepTimeout);
		if (!info)
			return info.error();
		GuestStatus out;
		out.uptimeSeconds = info->uptimeMs / 1000;
		out.idleLeftSeconds = info->idleLeftMs / 1000;
		out.details = {
			{"daemon_version", info->version},
			{"idle_timeout", std::to_string(info->idleTimeoutS)},
			{"disks", std::to_string(info->diskCount)},
			{"mounted", std::to_string(info->mountCount)},
			{"active_requests", std::to_string(info->activeRequests)},
		};
		return out;
	}

	Status stop() override { return session_.stop(); }

	Status list(std::string_view guestPath, EntryCallback onEntry) override
	{
		const bool isVirtual = listsVirtualLevel(guestPath);
		return session_.list(guestPath, [&](const proto::Entry &entry) noexcept {
			return onEntry(toEntry(entry, isVirtual));
		});
	}

	Status extract(std::string_view guestPath, ExtractFormat format, bool zstd,
		       EntryCallback onStart, DataCallback onData) override
	{
		const proto::ExtractFormat wire = format == ExtractFormat::Raw   ? proto::ExtractFormat::Raw
						  : format == ExtractFormat::Tar ? proto::ExtractFormat::Tar
										 : proto::ExtractFormat::Zip;
		return session_.extract(
			guestPath, wire, zstd ? proto::Compression::Zstd : proto::Compression::None,
			[&](const proto::Entry &entry) noexcept { return onStart(toEntry(entry, false)); },
			[&](std::span<const std::uint8_t> bytes) noexcept {
				return onData(std::string_view(reinterpret_cast<const char *>(bytes.data()),
							       bytes.size()));
			});
	}

private:
	fr::GuestSession session_;
};

class ProtocolSessionFactory final : public SessionFactory {
public:
	Result<std::unique_ptr<VmSession>> open(UniqueFd fd, std::string_view ticketHex,
						   milliseconds handshakeTimeout,
						   milliseconds ioTimeout) override
	{
		Result<proto::Key> key = proto::ticketFromHex(ticketHex, "ticket");
		if (!key)
			return key.error();
		auto stream = std::make_unique<DeadlineStream>(std::move(fd));
		DeadlineStream *raw = stream.get();
		raw->setDeadline(Clock::now() + handshakeTimeout);
		Result<fr::GuestSession> session =
			fr::GuestSession::open(std::move(stream), *key, clampMs(ioTimeout));
		if (!session)
			return session.error();
		// The session owns the stream now; it lives as long as the session.
		raw->setDeadline(std::nullopt);
		return std::unique_ptr<VmSession>(new ProtocolSession(std::move(*session)));
	}
};

} // namespace

std::unique_ptr<SessionFactory> makeProtocolSessionFactory()
{
	return std::make_unique<ProtocolSessionFactory>();
}

} // namespace fr::client
