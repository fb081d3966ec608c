// SPDX-License-Identifier: AGPL-3.0-or-later
#include "helper/initramfs.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "shared/guest_abi.h"

namespace fr::helper {

namespace {

void pad4(std::string &out, std::size_t base)
{
	while ((base + out.size()) % 4 != 0)
		out += '\0';
}

// One newc header + name, padded (the header is 110 bytes: magic and 13
// eight-digit hex fields).
void newcEntry(std::string &out, std::size_t base, std::string_view name, unsigned mode,
	       std::string_view data)
{
	char header[111];
	std::snprintf(header, sizeof(header),
		      "070701%08X%08X%08X%08X%08X%08X%08zX%08X%08X%08X%08X%08zX%08X",
		      1U,    // ino
		      mode,  // mode
		      0U,    // uid
		      0U,    // gid
		      1U,    // nlink
		      0U,    // mtime
		      data.size(),
		      0U, 0U, 0U, 0U, // dev and rdev major/minor
		      name.size() + 1, // name length including NUL
		      0U);   // check
	out.append(header, 110);
	out.append(name);
	out += '\0';
	pad4(out, base);
	out.append(data);
	pad4(out, base);
}

bool writeAll(int fd, const char *data, std::size_t size)
{
	while (size > 0) {
		const ssize_t n = ::write(fd, data, size);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		data += n;
		size -= static_cast<std::size_t>(n);
	}
	return true;
}

} // namespace

std::string ticketArchive(std::string_view ticket, std::size_t baseSize)
{
	std::string out;
	pad4(out, baseSize);
	std::string_view name = abi::kTicketPath;
	while (!name.empty() && name.front() == '/')
		name.remove_prefix(1); // cpio names are relative to the root
	newcEntry(out, baseSize, name, 0100400, ticket);
	newcEntry(out, baseSize, "TRAILER!!!", 0, {});
	return out;
}

Result<UniqueFd> buildInitramfs(int baseFd, std::string_view ticket)
{
	// MFD_NOEXEC_SEAL (Linux 6.3) where the kernel knows it: the image is
	// data, never executed; older kernels refuse the flag with EINVAL.
	constexpr unsigned kNoExecSeal = 0x0008U;
	UniqueFd memfd(::memfd_create("file-restore-initramfs",
				      MFD_CLOEXEC | MFD_ALLOW_SEALING | kNoExecSeal));
	if (!memfd.isValid() && errno == EINVAL)
		memfd.reset(::memfd_create("file-restore-initramfs", MFD_CLOEXEC | MFD_ALLOW_SEALING));
	if (!memfd.isValid())
		return Error(errno, "memfd_create", "initramfs");

	char buf[65536];
	long long total = 0;
	for (;;) {
		const ssize_t n = ::read(baseFd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return Error(errno, "read", "initramfs.img");
		}
		if (n == 0)
			break;
		total += n;
		if (total > kMaxInitramfsBytes)
			return Error(EFBIG, "read", "initramfs.img");
		if (!writeAll(memfd.get(), buf, static_cast<std::size_t>(n)))
			return Error(errno, "write", "initramfs memfd");
	}
	const std::string tail = ticketArchive(ticket, static_cast<std::size_t>(total));
	if (!writeAll(memfd.get(), tail.data(), tail.size()))
		return Error(errno, "write", "initramfs memfd");
	// Nothing may change the image once QEMU holds it.
	if (::fcntl(memfd.get(), F_ADD_SEALS,
		    F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
		return Error(errno, "fcntl(F_ADD_SEALS)", "initramfs memfd");
	// Hand QEMU a read-only fd (a memfd is always opened read-write).
	char self[40];
	std::snprintf(self, sizeof(self), "/proc/self/fd/%d", memfd.get());
	UniqueFd readOnly(::open(self, O_RDONLY | O_CLOEXEC));
	if (!readOnly.isValid())
		return Error(errno, "open", self);
	return readOnly;
}

} // namespace fr::helper
