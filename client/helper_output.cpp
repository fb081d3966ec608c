// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/helper_output.h"

#include <cerrno>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "shared/display.h"
#include "shared/guest_abi.h"

namespace fr::client {

namespace {

using nlohmann::json;

Error bad(std::string_view text, const char *why)
{
	return Error::invalid(EPROTO, "file-restore-helper output",
			      escapeForDisplay(text.substr(0, 80)), "%s", why);
}

} // namespace

Result<HelperOutput> parseHelperOutput(std::string_view text, Transport transport)
{
	if (text.size() > kHelperOutputMax)
		return bad(text, "longer than one short line");
	if (text.empty() || text.back() != '\n')
		return bad(text, "not one complete line");
	const std::string_view line = text.substr(0, text.size() - 1);
	if (line.find('\n') != std::string_view::npos)
		return bad(text, "more than one line");

	// Duplicate keys would otherwise silently keep the last value.
	bool duplicate = false;
	std::set<std::string> keys;
	const json::parser_callback_t noteKeys = [&](int depth, json::parse_event_t event,
						      json &parsed) {
		if (event == json::parse_event_t::key && depth == 1 &&
		    !keys.insert(parsed.get<std::string>()).second)
			duplicate = true;
		return true;
	};
	const json doc = json::parse(line, noteKeys, false);
	if (doc.is_discarded())
		return bad(text, "not JSON");
	if (duplicate)
		return bad(text, "a key appears twice");
	if (!doc.is_object() || doc.size() != 2 || !doc.contains("pid") || !doc.contains("cid"))
		return bad(text, "not an object with exactly \"pid\" and \"cid\"");

	const json &pid = doc["pid"];
	if (!pid.is_number_integer())
		return bad(text, "\"pid\" is not an integer");
	const std::int64_t pidValue = pid.get<std::int64_t>();
	// pid 1 is init: the helper never reports it, and signalling it is the
	// last thing a confused client should do.
	if (pidValue < 2 || pidValue > kPidMax)
		return bad(text, "\"pid\" is out of range");
	HelperOutput output;
	output.pid = static_cast<pid_t>(pidValue);

	const json &cid = doc["cid"];
	if (transport == Transport::Serial) {
		if (!cid.is_null())
			return bad(text, "\"cid\" must be null for the serial transport");
		return output;
	}
	if (!cid.is_number_integer())
		return bad(text, "\"cid\" is not an integer (vsock transport)");
	const std::int64_t cidValue = cid.get<std::int64_t>();
	// 0xffffffff is VMADDR_CID_ANY.
	if (cidValue < static_cast<std::int64_t>(abi::kMinCid) || cidValue > 0xfffffffeLL)
		return bad(text, "\"cid\" is out of range");
	output.cid = static_cast<std::uint32_t>(cidValue);
	return output;
}

} // namespace fr::client
