// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/initramfs.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "shared/cpio.h"
#include "shared/fd_io.h"
#include "shared/guest_abi.h"

namespace fr {

std::string ticketArchive(std::string_view ticket, std::size_t baseSize)
{
	// Zero padding to a 4-byte boundary: a new cpio must start 4-aligned.
	std::string out((4 - baseSize % 4) % 4, '\0');
	CpioEntry entry;
	entry.path = std::string(abi::kTicketPath).substr(1); // cpio names are relative
	entry.mode = 0400;
	entry.data = std::string(ticket);
	const std::vector<std::uint8_t> cpio = writeNewc({entry});
	out.append(cpio.begin(), cpio.end());
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
		if (Status ok = writeAll(memfd.get(), std::string_view(buf, static_cast<std::size_t>(n)),
					 "initramfs memfd");
		    !ok)
			return ok.error();
	}
	const std::string tail = ticketArchive(ticket, static_cast<std::size_t>(total));
	if (Status ok = writeAll(memfd.get(), tail, "initramfs memfd"); !ok)
		return ok.error();
	// Nothing may change the image once QEMU holds it.
	if (::fcntl(memfd.get(), F_ADD_SEALS,
		    F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
		return Error(errno, "fcntl(F_ADD_SEALS)", "initramfs memfd");
	// Hand QEMU a read-only fd (a memfd is always opened read-write).
	char self[40];
	(void)std::snprintf(self, sizeof(self), "/proc/self/fd/%d", memfd.get());
	UniqueFd readOnly(::open(self, O_RDONLY | O_CLOEXEC));
	if (!readOnly.isValid())
		return Error(errno, "open", self);
	return readOnly;
}

} // namespace fr
