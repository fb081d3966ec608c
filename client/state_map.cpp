// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/state_map.h"

#include <cerrno>
#include <set>

#include <nlohmann/json.hpp>

#include "client/encoding.h"
#include "client/helper_output.h"
#include "shared/guest_abi.h"
#include "shared/validate.h"

namespace fr::client {

namespace {

using nlohmann::json;

constexpr const char *kStateMapName = "vm-map.json";

Error bad(const std::string &where, const char *why)
{
	return Error::invalid(EINVAL, "state map", where.empty() ? std::string(kStateMapName) : where,
			      "%s", why);
}

// Fetches an integer field in [min, max].
Result<std::int64_t> integerField(const json &object, const char *key, std::int64_t min,
				  std::int64_t max, const std::string &where)
{
	const auto it = object.find(key);
	if (it == object.end())
		return bad(where + "." + key, "missing");
	if (!it->is_number_integer())
		return bad(where + "." + key, "not an integer");
	// A value above INT64_MAX arrives as unsigned; refuse it before the
	// conversion wraps it into range.
	if (it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(max))
		return bad(where + "." + key, "out of range");
	const std::int64_t value = it->get<std::int64_t>();
	if (value < min || value > max)
		return bad(where + "." + key, "out of range");
	return value;
}

Result<std::string> stringField(const json &object, const char *key, const std::string &where)
{
	const auto it = object.find(key);
	if (it == object.end())
		return bad(where + "." + key, "missing");
	if (!it->is_string())
		return bad(where + "." + key, "not a string");
	return it->get<std::string>();
}

Result<std::string> base64Field(const json &object, const char *key, const std::string &where)
{
	Result<std::string> text = stringField(object, key, where);
	if (!text)
		return text;
	std::optional<std::string> bytes = base64Decode(*text);
	if (!bytes)
		return bad(where + "." + key, "not base64");
	return *bytes;
}

Result<std::optional<std::uint32_t>> optionalU32(const json &object, const char *key,
						 std::int64_t min, std::int64_t max,
						 const std::string &where)
{
	const auto it = object.find(key);
	if (it == object.end())
		return bad(where + "." + key, "missing");
	if (it->is_null())
		return std::optional<std::uint32_t>();
	Result<std::int64_t> value = integerField(object, key, min, max, where);
	if (!value)
		return value.error();
	return std::optional<std::uint32_t>(static_cast<std::uint32_t>(*value));
}

Result<Archive> parseArchive(const json &item, const std::string &where)
{
	if (!item.is_object())
		return bad(where, "not an object");
	Archive archive;
	Result<std::string> name = base64Field(item, "name", where);
	if (!name)
		return name.error();
	if (name->empty() || name->size() > 255 || name->find('/') != std::string::npos ||
	    name->find('\0') != std::string::npos || *name == "." || *name == "..")
		return bad(where + ".name", "not a file name");
	archive.name = std::move(*name);
	Result<std::string> format = stringField(item, "format", where);
	if (!format)
		return format.error();
	const std::optional<ImageFormat> parsed = parseFormatName(*format);
	if (!parsed)
		return bad(where + ".format", "not a known image format");
	archive.format = *parsed;
	Result<std::string> path = base64Field(item, "path", where);
	if (!path)
		return path.error();
	// Bytes, as the file system has them; only the shape is checked here.
	if (path->empty() || path->front() != '/' || path->size() > kPathMax ||
	    path->find('\0') != std::string::npos)
		return bad(where + ".path", "not an absolute path");
	archive.path = std::move(*path);
	return archive;
}

// "transport", "cid" and "socket", which must agree with each other.
Status parseTransport(const json &item, const std::string &where, VmRecord &record)
{
	Result<std::string> transport = stringField(item, "transport", where);
	if (!transport)
		return transport.error();
	const std::optional<Transport> parsedTransport = parseTransportName(*transport);
	if (!parsedTransport)
		return bad(where + ".transport", "neither \"serial\" nor \"vsock\"");
	record.transport = *parsedTransport;

	Result<std::optional<std::uint32_t>> cid =
		optionalU32(item, "cid", abi::kMinCid, 0xfffffffeLL, where);
	if (!cid)
		return cid.error();
	record.cid = *cid;
	if ((record.transport == Transport::Vsock) != record.cid.has_value())
		return bad(where + ".cid", "a vsock VM needs a cid, a serial VM has none");

	const auto socket = item.find("socket");
	if (socket == item.end())
		return bad(where + ".socket", "missing");
	if (record.transport == Transport::Serial) {
		if (!socket->is_string())
			return bad(where + ".socket", "not a string");
		record.socketPath = socket->get<std::string>();
		if (!checkAbsolutePath(record.socketPath, kSafePathChars, "socket"))
			return bad(where + ".socket", "not a safe absolute path");
	} else if (!socket->is_null()) {
		return bad(where + ".socket", "must be null for vsock");
	}
	return {};
}

// "archives": 1..kStateMapMaxArchives of them, names unique.
Status parseArchives(const json &item, const std::string &where, VmRecord &record)
{
	const auto archives = item.find("archives");
	if (archives == item.end() || !archives->is_array())
		return bad(where + ".archives", "missing or not an array");
	if (archives->empty() || archives->size() > kStateMapMaxArchives)
		return bad(where + ".archives", "empty or too many");
	std::set<std::string> seen;
	for (std::size_t i = 0; i < archives->size(); ++i) {
		Result<Archive> archive =
			parseArchive((*archives)[i], where + ".archives[" + std::to_string(i) + "]");
		if (!archive)
			return archive.error();
		if (!seen.insert(archive->name).second)
			return bad(where + ".archives", "two archives share a name");
		record.archives.push_back(std::move(*archive));
	}
	return {};
}

// A datastore's VM: which datastore (base64: a path is bytes) and snapshot.
Status parseDatastore(const json &item, const std::string &where, VmRecord &record)
{
	const auto datastore = item.find("datastore");
	if (datastore != item.end()) {
		std::optional<std::string> decoded;
		if (datastore->is_string())
			decoded = base64Decode(datastore->get<std::string>());
		if (!decoded || decoded->empty() || decoded->front() != '/')
			return bad(where + ".datastore", "not the base64 of an absolute path");
		record.datastore = std::move(*decoded);
	}
	const auto snapshot = item.find("snapshot");
	if (snapshot != item.end()) {
		if (!snapshot->is_string() || snapshot->get<std::string>().empty() ||
		    snapshot->get<std::string>().size() > 4096 || record.datastore.empty())
			return bad(where + ".snapshot", "not a snapshot of a datastore");
		record.snapshot = snapshot->get<std::string>();
	}
	if (!record.datastore.empty() && record.snapshot.empty())
		return bad(where + ".snapshot", "missing for a datastore");
	return {};
}

Result<VmRecord> parseRecord(const json &item, const std::string &where)
{
	if (!item.is_object())
		return bad(where, "not an object");
	VmRecord record;

	Result<std::string> name = stringField(item, "name", where);
	if (!name)
		return name.error();
	if (!checkVmName(*name, "name"))
		return bad(where + ".name", "not a valid VM name");
	record.name = std::move(*name);

	Result<std::int64_t> pid = integerField(item, "pid", 2, kPidMax, where);
	if (!pid)
		return pid.error();
	record.pid = static_cast<pid_t>(*pid);
	Result<std::int64_t> startTime = integerField(item, "start_time", 0, INT64_MAX, where);
	if (!startTime)
		return startTime.error();
	record.startTime = static_cast<std::uint64_t>(*startTime);

	if (Status ok = parseTransport(item, where, record); !ok)
		return ok.error();

	Result<std::string> ticket = stringField(item, "ticket", where);
	if (!ticket)
		return ticket.error();
	if (!checkLowerHex(*ticket, abi::kTicketHexLength, "ticket"))
		return bad(where + ".ticket", "not 64 lowercase hex digits");
	record.ticket = std::move(*ticket);

	Result<std::int64_t> startedAt = integerField(item, "started_at", 0, INT64_MAX, where);
	if (!startedAt)
		return startedAt.error();
	record.startedAt = *startedAt;
	Result<std::int64_t> idle = integerField(item, "idle_timeout", 0, UINT32_MAX, where);
	if (!idle)
		return idle.error();
	record.idleTimeout = static_cast<std::uint32_t>(*idle);
	Result<std::optional<std::uint32_t>> memory = optionalU32(item, "memory", 1, UINT32_MAX, where);
	if (!memory)
		return memory.error();
	record.memory = *memory;
	// Absent in maps of earlier clients, whose VMs were all up.
	if (const auto ready = item.find("ready"); ready != item.end()) {
		if (!ready->is_boolean())
			return bad(where + ".ready", "not a boolean");
		record.ready = ready->get<bool>();
	}

	if (Status ok = parseArchives(item, where, record); !ok)
		return ok.error();
	if (Status ok = parseDatastore(item, where, record); !ok)
		return ok.error();
	return record;
}

} // namespace

const VmRecord *StateMap::find(std::string_view name) const
{
	for (const VmRecord &record : vms)
		if (record.name == name)
			return &record;
	return nullptr;
}

void StateMap::put(VmRecord record)
{
	for (VmRecord &existing : vms)
		if (existing.name == record.name) {
			existing = std::move(record);
			return;
		}
	vms.push_back(std::move(record));
}

bool StateMap::erase(std::string_view name)
{
	for (auto it = vms.begin(); it != vms.end(); ++it)
		if (it->name == name) {
			vms.erase(it);
			return true;
		}
	return false;
}

Result<StateMap> parseStateMap(std::string_view text)
{
	if (text.size() > kStateMapMaxBytes)
		return bad("", "too large");
	const json doc = json::parse(text, nullptr, false);
	if (doc.is_discarded())
		return bad("", "not JSON");
	if (!doc.is_object())
		return bad("", "not a JSON object");
	Result<std::int64_t> version = integerField(doc, "version", 0, INT32_MAX, "");
	if (!version)
		return version.error();
	if (*version != kStateMapVersion)
		return bad("version", "unsupported version");
	const auto vms = doc.find("vms");
	if (vms == doc.end() || !vms->is_array())
		return bad("vms", "missing or not an array");
	if (vms->size() > kStateMapMaxVms)
		return bad("vms", "too many entries");
	StateMap map;
	for (std::size_t i = 0; i < vms->size(); ++i) {
		Result<VmRecord> record = parseRecord((*vms)[i], "vms[" + std::to_string(i) + "]");
		if (!record)
			return record.error();
		if (map.find(record->name) != nullptr)
			return bad("vms[" + std::to_string(i) + "].name", "a VM appears twice");
		map.vms.push_back(std::move(*record));
	}
	return map;
}

std::string serializeStateMap(const StateMap &map)
{
	json vms = json::array();
	for (const VmRecord &record : map.vms) {
		json archives = json::array();
		for (const Archive &archive : record.archives)
			archives.push_back({{"name", base64Encode(archive.name)},
					    {"format", formatName(archive.format)},
					    {"path", base64Encode(archive.path)}});
		json item = {
			{"name", record.name},
			{"pid", record.pid},
			{"start_time", record.startTime},
			{"transport", transportName(record.transport)},
			{"cid", record.cid ? json(*record.cid) : json(nullptr)},
			{"socket", record.transport == Transport::Serial ? json(record.socketPath)
									: json(nullptr)},
			{"ticket", record.ticket},
			{"started_at", record.startedAt},
			{"idle_timeout", record.idleTimeout},
			{"memory", record.memory ? json(*record.memory) : json(nullptr)},
			{"ready", record.ready},
			{"archives", std::move(archives)},
		};
		if (!record.datastore.empty()) {
			item["datastore"] = base64Encode(record.datastore);
			item["snapshot"] = record.snapshot;
		}
		vms.push_back(std::move(item));
	}
	const json doc = {{"version", kStateMapVersion}, {"vms", std::move(vms)}};
	// Every string here is ASCII (names are escaped, bytes base64) except a
	// socket path, which checkAbsolutePath limited to kSafePathChars.
	return doc.dump(1, '\t') + "\n";
}

} // namespace fr::client
