// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/types.h"

namespace fr::client {

namespace {

struct FormatName {
	ImageFormat format;
	const char *name;
};

// The spellings QEMU's block drivers and the helper's --image use.
constexpr FormatName kFormats[] = {
	{ImageFormat::Raw, "raw"},   {ImageFormat::Qcow2, "qcow2"}, {ImageFormat::Vmdk, "vmdk"},
	{ImageFormat::Vdi, "vdi"},   {ImageFormat::Vhdx, "vhdx"},
};

} // namespace

const char *formatName(ImageFormat format) noexcept
{
	for (const FormatName &entry : kFormats)
		if (entry.format == format)
			return entry.name;
	return "raw";
}

std::optional<ImageFormat> parseFormatName(std::string_view name) noexcept
{
	for (const FormatName &entry : kFormats)
		if (name == entry.name)
			return entry.format;
	return std::nullopt;
}

const char *transportName(Transport transport) noexcept
{
	return transport == Transport::Vsock ? "vsock" : "serial";
}

std::optional<Transport> parseTransportName(std::string_view name) noexcept
{
	if (name == "serial")
		return Transport::Serial;
	if (name == "vsock")
		return Transport::Vsock;
	return std::nullopt;
}

std::optional<TransportChoice> parseTransportChoice(std::string_view name) noexcept
{
	if (name == "auto")
		return TransportChoice::Auto;
	if (name == "serial")
		return TransportChoice::Serial;
	if (name == "vsock")
		return TransportChoice::Vsock;
	return std::nullopt;
}

} // namespace fr::client
