// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/dm.h"

#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "shared/log.h"
#include "shared/unique_fd.h"

namespace fr::guest {

namespace {

constexpr const char *kDmControl = "/dev/mapper/control";

// A dm ioctl buffer: struct dm_ioctl followed by its payload.
struct DmBuffer {
	std::vector<std::uint8_t> bytes;
	dm_ioctl *io() { return reinterpret_cast<dm_ioctl *>(bytes.data()); }
};

DmBuffer dmBuffer(const std::string &name, std::size_t payload)
{
	DmBuffer b;
	b.bytes.assign(sizeof(dm_ioctl) + payload + 8, 0);
	dm_ioctl *io = b.io();
	io->version[0] = DM_VERSION_MAJOR;
	io->version[1] = 0;
	io->version[2] = 0;
	io->data_size = static_cast<std::uint32_t>(b.bytes.size());
	io->data_start = sizeof(dm_ioctl);
	std::strncpy(io->name, name.c_str(), sizeof(io->name) - 1);
	return b;
}

Status dmIoctl(int control, unsigned long request, DmBuffer &b, const std::string &name, const char *what)
{
	if (::ioctl(control, request, b.bytes.data()) != 0)
		return Error(errno, what, name);
	return {};
}

} // namespace

Result<LoopDevice> attachLoop(int file, bool readOnly)
{
	UniqueFd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
	if (!control.isValid())
		return Error(errno, "open", "/dev/loop-control");
	for (int attempt = 0; attempt < 8; ++attempt) {
		const int n = ::ioctl(control.get(), LOOP_CTL_GET_FREE);
		if (n < 0)
			return Error(errno, "LOOP_CTL_GET_FREE", "/dev/loop-control");
		const std::string dev = "/dev/loop" + std::to_string(n);
		UniqueFd loop(::open(dev.c_str(), (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC));
		if (!loop.isValid())
			return Error(errno, "open", dev);
		loop_config config{};
		config.fd = static_cast<std::uint32_t>(file);
		// Autoclear: the device detaches (and a tmpfs store is freed) when
		// its last user (a mount, a dm table) lets go.
		config.info.lo_flags = LO_FLAGS_AUTOCLEAR | (readOnly ? LO_FLAGS_READ_ONLY : 0);
		if (::ioctl(loop.get(), LOOP_CONFIGURE, &config) == 0)
			return LoopDevice{dev, std::move(loop)};
		if (errno != EBUSY) // another thread took it: try the next
			return Error(errno, "LOOP_CONFIGURE", dev);
	}
	return Error(EBUSY, "LOOP_CONFIGURE", "/dev/loop*");
}

namespace {

// "<start> <length> <target> <params>": the two numbers, the target type
// (shorter than DM_MAX_TYPE_NAME) and where the parameters start.
bool parseTableLine(const std::string &line, unsigned long long &start, unsigned long long &length,
		    std::string &target, std::size_t &params)
{
	const char *p = line.c_str();
	for (unsigned long long *number : {&start, &length}) {
		char *end = nullptr;
		errno = 0;
		*number = std::strtoull(p, &end, 10);
		if (end == p || errno != 0)
			return false;
		p = end;
	}
	const auto blank = [](char c) { return c == ' ' || c == '\t'; };
	while (blank(*p))
		++p;
	const char *type = p;
	while (*p != '\0' && !blank(*p))
		++p;
	if (p == type || static_cast<std::size_t>(p - type) >= DM_MAX_TYPE_NAME)
		return false;
	target.assign(type, p);
	while (blank(*p))
		++p;
	params = static_cast<std::size_t>(p - line.c_str());
	return true;
}

// The table as DM_TABLE_LOAD takes it: one dm_target_spec and its
// NUL-terminated parameters per line, each spec 8-byte aligned (its `next`
// is the offset of the next one). `count`: the lines.
Result<std::vector<std::uint8_t>> targetSpecs(const std::string &table, std::uint32_t &count)
{
	std::vector<std::uint8_t> specs;
	std::size_t from = 0;
	while (from < table.size()) {
		std::size_t end = table.find('\n', from);
		if (end == std::string::npos)
			end = table.size();
		const std::string line = table.substr(from, end - from);
		from = end + 1;
		unsigned long long start = 0, length = 0;
		std::string target;
		std::size_t consumed = 0;
		if (!parseTableLine(line, start, length, target, consumed))
			return Error::invalid(EINVAL, "dm table", line, "not '<start> <length> <target> <params>'");
		const std::string params = line.substr(consumed);
		std::size_t size = sizeof(dm_target_spec) + params.size() + 1;
		size = (size + 7) & ~std::size_t{7};
		const std::size_t at = specs.size();
		specs.resize(at + size, 0);
		dm_target_spec spec{};
		spec.sector_start = start;
		spec.length = length;
		std::memcpy(spec.target_type, target.data(), target.size());
		spec.next = static_cast<std::uint32_t>(size);
		std::memcpy(specs.data() + at, &spec, sizeof(spec));
		std::memcpy(specs.data() + at + sizeof(spec), params.c_str(), params.size() + 1);
		++count;
	}
	return specs;
}

} // namespace

Result<std::string> dmCreate(const std::string &name, const std::string &table, bool readOnly)
{
	if (name.empty() || name.size() >= DM_NAME_LEN)
		return Error::invalid(EINVAL, "dm", name, "bad device name");
	UniqueFd control(::open(kDmControl, O_RDWR | O_CLOEXEC));
	if (!control.isValid())
		return Error(errno, "open", kDmControl);
	DmBuffer create = dmBuffer(name, 0);
	if (Status ok = dmIoctl(control.get(), DM_DEV_CREATE, create, name, "DM_DEV_CREATE"); !ok)
		return ok.error();
	const dev_t devno = static_cast<dev_t>(create.io()->dev);

	std::uint32_t count = 0;
	Result<std::vector<std::uint8_t>> specs = targetSpecs(table, count);
	if (!specs) {
		DmBuffer remove = dmBuffer(name, 0);
		(void)dmIoctl(control.get(), DM_DEV_REMOVE, remove, name, "DM_DEV_REMOVE");
		return specs.error();
	}
	DmBuffer load = dmBuffer(name, specs->size());
	load.io()->target_count = count;
	if (readOnly)
		load.io()->flags |= DM_READONLY_FLAG;
	std::memcpy(load.bytes.data() + sizeof(dm_ioctl), specs->data(), specs->size());
	Status loaded = dmIoctl(control.get(), DM_TABLE_LOAD, load, name, "DM_TABLE_LOAD");
	DmBuffer resume = dmBuffer(name, 0);
	if (loaded)
		loaded = dmIoctl(control.get(), DM_DEV_SUSPEND, resume, name, "DM_DEV_SUSPEND (resume)");
	if (!loaded) {
		DmBuffer remove = dmBuffer(name, 0);
		(void)dmIoctl(control.get(), DM_DEV_REMOVE, remove, name, "DM_DEV_REMOVE");
		return loaded.error();
	}
	return "/dev/dm-" + std::to_string(minor(devno));
}

Status dmRemove(const std::string &name)
{
	UniqueFd control(::open(kDmControl, O_RDWR | O_CLOEXEC));
	if (!control.isValid())
		return Error(errno, "open", kDmControl);
	DmBuffer remove = dmBuffer(name, 0);
	return dmIoctl(control.get(), DM_DEV_REMOVE, remove, name, "DM_DEV_REMOVE");
}

Result<CowDevice> makeCow(const std::string &origin, std::uint64_t originBytes, std::uint64_t storeBytes,
			  const std::string &storeDir, unsigned serial)
{
	::mkdir(storeDir.c_str(), 0700);
	const std::string store = storeDir + "/cow" + std::to_string(serial);
	UniqueFd file(::open(store.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	if (!file.isValid())
		return Error(errno, "open", store);
	// The tmpfs file is unlinked at once: it lives as long as the loop
	// device holds it.
	::unlink(store.c_str());
	if (::ftruncate(file.get(), static_cast<off_t>(storeBytes)) != 0)
		return Error(errno, "ftruncate", store);
	Result<LoopDevice> loop = attachLoop(file.get(), false);
	if (!loop)
		return loop.error();
	CowDevice cow;
	cow.name = "fr-cow" + std::to_string(serial);
	// snapshot <origin> <COW device> <persistent?> <chunk size in sectors>
	const std::string table = "0 " + std::to_string(originBytes / 512) + " snapshot " + origin + " " + loop->dev + " N 8";
	Result<std::string> dev = dmCreate(cow.name, table, false);
	if (!dev)
		return dev.error(); // the loop device autoclears as `loop` closes

	cow.dev = *dev;
	return cow;
}

void removeCow(const CowDevice &cow)
{
	if (Status ok = dmRemove(cow.name); !ok)
		logError(ok.error(), LogLevel::Warning);
}

} // namespace fr::guest
