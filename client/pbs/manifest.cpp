// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/pbs/manifest.h"

#include <cerrno>

#include "client/pbs/blob.h"
#include "shared/display.h"

namespace fr::pbs {

using nlohmann::json;

namespace {

Error bad(const char *field, const char *what)
{
	return Error::invalid(EINVAL, "manifest", field, "%s", what);
}

bool plainFileName(const std::string &name)
{
	return !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
	       name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

Status appendCanonical(const json &value, std::string &out)
{
	switch (value.type()) {
	case json::value_t::object: {
		// nlohmann's object is a std::map: keys come sorted bytewise,
		// as serde's sorted keys.
		out += '{';
		bool first = true;
		for (const auto &[key, item] : value.items()) {
			if (!first)
				out += ',';
			first = false;
			out += json(key).dump(-1, ' ', false, json::error_handler_t::strict);
			out += ':';
			if (Status s = appendCanonical(item, out); !s)
				return s;
		}
		out += '}';
		return {};
	}
	case json::value_t::array: {
		out += '[';
		bool first = true;
		for (const json &item : value) {
			if (!first)
				out += ',';
			first = false;
			if (Status s = appendCanonical(item, out); !s)
				return s;
		}
		out += ']';
		return {};
	}
	case json::value_t::null:
		return Error::invalid(EINVAL, "canonical json", "", "null is not allowed");
	case json::value_t::number_float:
		return Error::invalid(EINVAL, "canonical json", "",
				      "non-integer numbers are not allowed");
	default:
		out += value.dump(-1, ' ', false, json::error_handler_t::strict);
		return {};
	}
}

} // namespace

const char *cryptModeName(CryptMode mode) noexcept
{
	switch (mode) {
	case CryptMode::None:
		return "none";
	case CryptMode::Encrypt:
		return "encrypt";
	case CryptMode::SignOnly:
		return "sign-only";
	}
	return "?";
}

const ManifestFile *Manifest::find(std::string_view filename) const
{
	for (const ManifestFile &file : files)
		if (file.filename == filename)
			return &file;
	return nullptr;
}

bool Manifest::encrypted() const
{
	for (const ManifestFile &file : files)
		if (file.cryptMode == CryptMode::Encrypt)
			return true;
	return false;
}

namespace {

// One entry of "files".
Result<ManifestFile> parseFileEntry(const json &entry)
{
	if (!entry.is_object())
		return bad("files", "an entry is not an object");
	ManifestFile file;
	const auto name = entry.find("filename");
	if (name == entry.end() || !name->is_string() || !plainFileName(name->get<std::string>()))
		return bad("files.filename", "missing or not a plain file name");
	file.filename = name->get<std::string>();
	// "crypt-mode" is absent in manifests older than PBS 0.8.
	const auto mode = entry.find("crypt-mode");
	if (mode != entry.end()) {
		const std::string m = mode->is_string() ? mode->get<std::string>() : "";
		if (m == "none")
			file.cryptMode = CryptMode::None;
		else if (m == "encrypt")
			file.cryptMode = CryptMode::Encrypt;
		else if (m == "sign-only")
			file.cryptMode = CryptMode::SignOnly;
		else
			return bad("files.crypt-mode", mode->is_string() ? "not none, encrypt or sign-only"
									 : "not a string");
	}
	const auto size = entry.find("size");
	if (size == entry.end() || !size->is_number_unsigned())
		return bad("files.size", "missing or not an unsigned integer");
	file.size = size->get<std::uint64_t>();
	const auto csum = entry.find("csum");
	if (csum == entry.end() || !csum->is_string() ||
	    !parseHex(csum->get<std::string>(), file.csum))
		return bad("files.csum", "missing or not 64 hex digits");
	return file;
}

// "files": at most 1024 entries, no name twice.
Status parseFiles(const json &root, Manifest &out)
{
	const auto files = root.find("files");
	if (files == root.end() || !files->is_array())
		return bad("files", "missing or not an array");
	if (files->size() > 1024)
		return bad("files", "more than 1024 entries");
	for (const json &entry : *files) {
		Result<ManifestFile> file = parseFileEntry(entry);
		if (!file)
			return file.error();
		for (const ManifestFile &other : out.files)
			if (other.filename == file->filename)
				return bad("files.filename", "listed twice");
		out.files.push_back(std::move(*file));
	}
	return {};
}

// "unprotected" (its key fingerprint) and "signature", both optional.
Status parseKeyFields(const json &root, Manifest &out)
{
	const auto unprotected = root.find("unprotected");
	if (unprotected != root.end() && !unprotected->is_null()) {
		if (!unprotected->is_object())
			return bad("unprotected", "not an object");
		const auto fp = unprotected->find("key-fingerprint");
		if (fp != unprotected->end() && !fp->is_null()) {
			if (!fp->is_string())
				return bad("unprotected.key-fingerprint", "not a string");
			Result<Digest> parsed = parseFingerprint(fp->get<std::string>());
			if (!parsed)
				return bad("unprotected.key-fingerprint",
					   "not 32 colon-separated hex bytes");
			out.keyFingerprint = *parsed;
		}
	}
	const auto signature = root.find("signature");
	if (signature != root.end() && !signature->is_null()) {
		Digest sig{};
		if (!signature->is_string() || !parseHex(signature->get<std::string>(), sig))
			return bad("signature", "not 64 hex digits");
		out.signature = sig;
	}
	return {};
}

} // namespace

Result<Manifest> parseManifest(std::string_view text)
{
	json root = json::parse(text, nullptr, false);
	if (root.is_discarded())
		return Error::invalid(EINVAL, "manifest", "", "not valid JSON");
	if (!root.is_object())
		return bad("", "not a JSON object");
	Manifest out;
	const auto type = root.find("backup-type");
	const auto id = root.find("backup-id");
	const auto time = root.find("backup-time");
	if (type == root.end() || !type->is_string())
		return bad("backup-type", "missing or not a string");
	if (id == root.end() || !id->is_string())
		return bad("backup-id", "missing or not a string");
	if (time == root.end() || !time->is_number_integer())
		return bad("backup-time", "missing or not an integer");
	out.backupType = type->get<std::string>();
	out.backupId = id->get<std::string>();
	out.backupTime = time->get<std::int64_t>();
	if (Status files = parseFiles(root, out); !files)
		return files.error();
	if (Status keys = parseKeyFields(root, out); !keys)
		return keys.error();
	out.json = std::make_shared<const nlohmann::json>(std::move(root));
	return out;
}

Result<Manifest> decodeManifest(ByteView blob)
{
	Result<Bytes> data = decodeBlob(blob, nullptr, DecodeLimits{std::nullopt, kManifestMaxBytes});
	if (!data)
		return Error::invalid(data.error().errnum(), "manifest", kManifestName, "%s",
				      data.error().reason());
	return parseManifest(std::string_view(reinterpret_cast<const char *>(data->data()),
					      data->size()));
}

Result<std::string> canonicalJson(const json &value)
{
	std::string out;
	try {
		if (Status s = appendCanonical(value, out); !s)
			return s.error();
	} catch (const json::exception &) {
		return Error::invalid(EINVAL, "canonical json", "", "a string is not valid UTF-8");
	}
	return out;
}

Result<Digest> manifestSignature(const json &manifest, const CryptConfig &crypt)
{
	if (!manifest.is_object())
		return Error::invalid(EINVAL, "manifest", "", "not a JSON object");
	json signedPart = manifest;
	signedPart.erase("unprotected");
	signedPart.erase("signature");
	Result<std::string> canonical = canonicalJson(signedPart);
	if (!canonical)
		return canonical.error();
	return crypt.authTag(asBytes(*canonical));
}

Status checkManifestKey(const Manifest &manifest, const CryptConfig *crypt)
{
	if (crypt == nullptr) {
		if (!manifest.encrypted())
			return {};
		if (manifest.keyFingerprint)
			return Error::invalid(EACCES, "snapshot", "",
					      "is encrypted with key %s; give --keyfile",
					      formatFingerprint(*manifest.keyFingerprint).c_str());
		return Error::invalid(EACCES, "snapshot", "", "is encrypted; give --keyfile");
	}
	const Digest ours = crypt->fingerprint();
	if (manifest.keyFingerprint && *manifest.keyFingerprint != ours)
		return Error::invalid(EACCES, "key", formatFingerprint(ours),
				      "wrong key: the snapshot was made with key %s",
				      formatFingerprint(*manifest.keyFingerprint).c_str());
	if (manifest.signature) {
		if (!manifest.json)
			return Error::invalid(EBADMSG, "manifest", kManifestName, "signed but not parsed");
		Result<Digest> expected = manifestSignature(*manifest.json, *crypt);
		if (!expected)
			return expected.error();
		if (*expected != *manifest.signature)
			return Error::invalid(EBADMSG, "manifest", kManifestName,
					      "its signature does not verify with key %s",
					      formatFingerprint(ours).c_str());
	}
	return {};
}

Result<std::string> encodeManifestJson(const Manifest &manifest, const CryptConfig *crypt)
{
	json root = json::object();
	root["backup-type"] = manifest.backupType;
	root["backup-id"] = manifest.backupId;
	root["backup-time"] = manifest.backupTime;
	json files = json::array();
	for (const ManifestFile &file : manifest.files)
		files.push_back({{"filename", file.filename},
				 {"crypt-mode", cryptModeName(file.cryptMode)},
				 {"size", file.size},
				 {"csum", hex(file.csum)}});
	root["files"] = files;
	root["unprotected"] = json::object();
	if (crypt != nullptr) {
		Result<Digest> sig = manifestSignature(root, *crypt);
		if (!sig)
			return sig.error();
		root["signature"] = hex(*sig);
		root["unprotected"]["key-fingerprint"] = formatFingerprint(crypt->fingerprint());
	}
	return root.dump(2);
}

} // namespace fr::pbs
